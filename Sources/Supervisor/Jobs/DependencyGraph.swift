import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// Who needs whom and who goes first, read from the unit files and from the `.wants/` and
/// `.requires/` folders that `enable` fills. A name is a service or a target (`default.target`
/// is `multi-user.target` unless it has folders of its own).
public struct DependencyGraph {
    let units: UnitRegistry

    public static let defaultTarget = "default.target"

    func requires(_ name: String) -> [String] { unique((config(name)?.requires ?? []) + folder(name, "requires")) }
    func wants(_ name: String) -> [String] { unique((config(name)?.wants ?? []) + folder(name, "wants")) }
    func conflicts(_ name: String) -> [String] { config(name)?.conflicts ?? [] }

    /// Whether `first` must be up (or, when stopping, down) before `second`.
    func isOrdered(_ first: String, before second: String) -> Bool {
        (config(second)?.after.contains(first) ?? false) || (config(first)?.before.contains(second) ?? false)
            || (isTarget(second) && (requires(second) + wants(second)).contains(first))
    }

    /// Services whose Requires= names `name` (they stop with it).
    func requiredBy(_ name: String) -> [String] {
        units.services.values.filter { requires($0.name.full).contains(name) }.map(\.name.full).sorted()
    }

    func isTarget(_ name: String) -> Bool { name.hasSuffix(".target") }

    private func config(_ name: String) -> ServiceConfig? {
        guard let unit = UnitName(name) else { return nil }
        return units.services[unit]?.config ?? units.loader.load(unit)?.config
    }

    /// `NAME.wants/` or `NAME.requires/` entries in every unit folder.
    private func folder(_ name: String, _ kind: String) -> [String] {
        var names: [String] = []
        let aliases = name == Self.defaultTarget && !hasFolders(name) ? ["multi-user.target"] : [name]
        for alias in aliases {
            for directory in units.loader.directories {
                guard let folder = opendir("\(directory)/\(alias).\(kind)") else { continue }
                defer { closedir(folder) }
                while let entry = readdir(folder) {
                    let file = directoryEntryName(entry)
                    if UnitReference.isValid(file) { names.append(file) }
                }
            }
        }
        return names.sorted()
    }

    private func hasFolders(_ name: String) -> Bool {
        units.loader.directories.contains { access("\($0)/\(name).wants", F_OK) == 0 || access("\($0)/\(name).requires", F_OK) == 0 }
    }

    private func unique(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }
}
