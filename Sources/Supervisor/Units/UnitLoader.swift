#if canImport(Glibc)
import Glibc
#endif

/// Finds and reads unit files from the configured folders: the first folder that has a unit wins
/// (by default /etc/ferry/system, then /run/ferry/system, as systemd prefers /etc over /run).
/// An instance `a@b.service` without a file of its own uses its template `a@.service`.
public struct UnitLoader: Sendable {
    public var directories: [String]

    public static let defaultDirectories = ["/etc/ferry/system", "/run/ferry/system"]

    public init(directories: [String] = UnitLoader.defaultDirectories) { self.directories = directories }

    public struct Loaded: Sendable {
        public var name: UnitName
        public var path: String
        public var config: ServiceConfig
        public var warnings: [String]
    }

    /// Loads `name`; nil when no folder has a file for it (the unit is then "not-found").
    public func load(_ name: UnitName) -> Loaded? {
        for candidate in [name, name.template].compactMap({ $0 }) {
            for directory in directories {
                let path = "\(directory)/\(candidate.full)"
                guard let text = readFile(path) else { continue }
                let (config, warnings) = ServiceConfig.interpret(UnitFile.parse(text), unit: name)
                return Loaded(name: name, path: path, config: config, warnings: warnings)
            }
        }
        return nil
    }

    /// Every unit that has a file of its own (templates themselves are not units).
    public func allNames() -> [UnitName] {
        var names: Set<UnitName> = []
        for directory in directories {
            guard let folder = opendir(directory) else { continue }
            defer { closedir(folder) }
            while let entry = readdir(folder) {
                let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if let name = UnitName(file), name.instance?.isEmpty != true { names.insert(name) }
            }
        }
        return names.sorted()
    }
}
