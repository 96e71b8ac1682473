import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// Who is asking the broker: what the kernel says of the connecting process (SO_PEERCRED), never
/// what the client claims. The owner of a session is its uid with its unit (a ferryd unit the
/// pid belongs to) or else its cgroup path: both outlive the process, so after a kexec the same
/// service, started again, is the same owner; the pid is only logged.
public struct ClientIdentity: Sendable, Hashable, CustomStringConvertible {
    public var uid: UInt32
    public var pid: Int32
    /// The cgroup v2 path of the process (`/system.slice/vmm.service`), when it could be read.
    public var cgroup: String?
    /// The ferryd unit the process belongs to, when it is one of ferryd's.
    public var unit: String?

    public init(uid: UInt32, pid: Int32, cgroup: String?, unit: String?) {
        self.uid = uid
        self.pid = pid
        self.cgroup = cgroup
        self.unit = unit
    }

    /// The part of the identity sessions belong to (uid aside): stable across restarts and kexecs.
    public var owner: String {
        if let unit { return "unit=\(unit)" }
        return "cgroup=\(cgroup ?? "?")"
    }

    public var isRoot: Bool { uid == 0 }

    public var description: String { "uid \(uid) \(owner) (pid \(pid))" }

    /// The owner key a session is recorded under: uid and owner.
    public var key: OwnerKey { OwnerKey(uid: uid, owner: owner) }

    /// The cgroup v2 path of `pid` from /proc/PID/cgroup ("0::/path"), or nil.
    public static func cgroup(of pid: Int32) -> String? {
        guard let text = FileIO.text(ofFile: "/proc/\(pid)/cgroup", limit: 8192) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }
}

/// uid and owner: whose a brokered session is. Recorded in the mapping across a kexec.
public struct OwnerKey: Sendable, Hashable, Codable, CustomStringConvertible {
    public var uid: UInt32
    public var owner: String
    public init(uid: UInt32, owner: String) {
        self.uid = uid
        self.owner = owner
    }
    public var description: String { "uid \(uid) \(owner)" }
}
