import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// cgroup v2 process tracking: one cgroup per service under a root ferryd owns, so every process a
/// service starts stays attributed to it (also one that leaves the process group with setsid) and
/// is stopped with it. Used only where ferryd can create cgroups; elsewhere process groups serve.
public struct ControlGroups: Sendable {
    /// The folder under the cgroup2 mount, e.g. /sys/fs/cgroup/ferry.
    public let root: String
    /// `root` as /proc/PID/cgroup shows it (relative to the cgroup2 mount), e.g. /ferry.
    let rootInHierarchy: String

    static let cgroup2Magic: UInt = 0x6367_7270

    /// The tracker, when `mount` is a cgroup2 file system and ferryd can create cgroups in it.
    ///
    /// At the top of the hierarchy (PID 1) the units go under `/NAME`. In a cgroup of its own that
    /// it may write (systemd's `Delegate=yes`), ferryd stays inside it: it moves itself into a leaf
    /// `ferryd` (a cgroup with children holds no processes of its own) and puts each unit beside it.
    public static func detect(mount: String = "/sys/fs/cgroup", name: String = "ferry") -> ControlGroups? {
        var info = statfs()
        guard statfs(mount, &info) == 0, UInt(bitPattern: Int(info.f_type)) == cgroup2Magic else { return nil }
        if let own = ownCgroup(), own != "/", let delegated = delegatedSubtree(mount: mount, own: own) { return delegated }
        let root = "\(mount)/\(name)"
        if mkdir(root, 0o755) != 0 && errno != EEXIST { return nil }
        guard access("\(root)/cgroup.procs", W_OK) == 0 else { return nil }
        // Where this mount sits in the hierarchy: our own cgroup line is relative to the namespace root.
        return ControlGroups(root: root, rootInHierarchy: "/\(name)")
    }

    /// This process's cgroup v2 path, from the `0::` line of /proc/self/cgroup.
    static func ownCgroup() -> String? {
        guard let text = readFile("/proc/self/cgroup") else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    private static func delegatedSubtree(mount: String, own: String) -> ControlGroups? {
        let root = mount + own
        // A re-executed ferryd is already in its leaf.
        let base = own.hasSuffix("/ferryd") ? String(root.dropLast("/ferryd".count)) : root
        let inHierarchy = own.hasSuffix("/ferryd") ? String(own.dropLast("/ferryd".count)) : own
        guard access("\(base)/cgroup.procs", W_OK) == 0 else { return nil }
        let leaf = "\(base)/ferryd"
        if mkdir(leaf, 0o755) != 0 && errno != EEXIST { return nil }
        let fd = open("\(leaf)/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let procs = OwnedFD(adopting: fd)
        guard (try? FileIO.writeAll(procs.borrowed, Array("\(getpid())".utf8))) != nil else { return nil }
        return ControlGroups(root: base, rootInHierarchy: inHierarchy)
    }

    func folder(_ unit: UnitName) -> String { "\(root)/\(unit.full)" }

    /// Creates the unit's cgroup and opens its cgroup.procs for the spawner. The caller owns the fd.
    func prepare(_ unit: UnitName) -> OwnedFD? {
        let path = folder(unit)
        if mkdir(path, 0o755) != 0 && errno != EEXIST { return nil }
        let fd = open("\(path)/cgroup.procs", O_WRONLY | O_CLOEXEC)
        return fd >= 0 ? OwnedFD(adopting: fd) : nil
    }

    /// The processes in the unit's cgroup.
    func processes(_ unit: UnitName) -> [pid_t] {
        guard let text = readFile("\(folder(unit))/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Sends `signal` to every process of the unit's cgroup (SIGKILL through cgroup.kill when there).
    func signal(_ unit: UnitName, _ signal: CInt) {
        if signal == SIGKILL, writeText("\(folder(unit))/cgroup.kill", "1") { return }
        for pid in processes(unit) { kill(pid, signal) }
    }

    /// Removes the unit's cgroup once it is empty (harmless if it is not).
    func release(_ unit: UnitName) {
        _ = rmdir(folder(unit))
    }

    /// The unit whose cgroup holds `pid`, from /proc/PID/cgroup.
    func unit(of pid: pid_t) -> UnitName? {
        guard let text = readFile("/proc/\(pid)/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let path = line.dropFirst(3)
            guard path.hasPrefix(rootInHierarchy + "/") else { return nil }
            let rest = path.dropFirst(rootInHierarchy.count + 1)
            return UnitName(String(rest.split(separator: "/").first ?? ""))
        }
        return nil
    }

    private func writeText(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.withCString { write(fd, $0, strlen($0)) } > 0
    }
}
