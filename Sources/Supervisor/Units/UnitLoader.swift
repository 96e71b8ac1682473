import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// Finds and reads unit files from the configured folders: the first folder that has a unit wins
/// (by default /etc/ferry/system, then /run/ferry/system, as systemd prefers /etc over /run).
/// An instance `a@b.service` without a file of its own uses its template `a@.service`.
public struct UnitLoader: Sendable {
    public var directories: [String]
    /// Hears why a file that is there was not read (not a regular file, too large).
    public var reportRejected: @Sendable (String) -> Void = { _ in }

    public static let defaultDirectories = ["/etc/ferry/system", "/run/ferry/system"]
    /// Larger unit files are refused unread.
    public static let maximumFileSize = 1 << 20

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
                guard let text = unitFileText(path) else { continue }
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
                let file = directoryEntryName(entry)
                if let name = UnitName(file), name.instance?.isEmpty != true { names.insert(name) }
            }
        }
        return names.sorted()
    }

    /// A unit file's text, nil when there is none. Opened without blocking (a FIFO named like a
    /// unit must not stall ferryd) and read only when it is a regular file of sane size.
    private func unitFileText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        let owned = OwnedFD(adopting: fd)
        guard let status = try? FileIdentity.stat(owned.borrowed) else { return nil }
        guard status.st_mode & S_IFMT == S_IFREG else {
            reportRejected("\(path): not a regular file (mode \(String(status.st_mode & S_IFMT, radix: 8))), ignored")
            return nil
        }
        guard status.st_size <= Self.maximumFileSize else {
            reportRejected("\(path): \(status.st_size) bytes, larger than \(Self.maximumFileSize), ignored")
            return nil
        }
        return (try? FileIO.readAll(owned.borrowed)).map { String(decoding: $0, as: UTF8.self) }
    }
}
