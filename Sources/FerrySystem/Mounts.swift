import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The mount table, and what init does with it last: leave every disk file system clean before
/// the kernel goes (a kexec, a reboot or a power-off), so the next boot replays no journal.
public enum Mounts {
    public struct Entry: Equatable, Sendable {
        public var mountPoint: String
        public var type: String
    }

    /// File systems that hold nothing on a disk: nothing to flush, and init still needs some.
    static let virtualTypes: Set<String> = [
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "tmpfs", "ramfs", "rootfs", "securityfs",
        "debugfs", "tracefs", "bpf", "pstore", "mqueue", "hugetlbfs", "configfs", "fusectl", "autofs",
        "binfmt_misc", "efivarfs", "nsfs",
    ]

    /// /proc/self/mountinfo, in mount order.
    public static func current() -> [Entry] {
        parse(FileIO.text(ofFile: "/proc/self/mountinfo", limit: 4 << 20) ?? "")
    }

    /// One line per mount: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`.
    static func parse(_ text: String) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return nil }
            return Entry(mountPoint: unescape(fields[4]), type: String(fields[dash + 1]))
        }
    }

    /// mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        while let byte = rest.first {
            if byte == UInt8(ascii: "\\"), rest.count >= 4,
                let value = UInt8(String(decoding: rest.dropFirst().prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Unmounts every disk file system it can, newest first, and remounts the rest (the root
    /// among them) read-only. Call it when every other process is gone. Returns the mount points
    /// left writable, with why.
    @discardableResult
    public static func quiesce() -> [String] {
        sync()
        var left: [String] = []
        for entry in current().reversed() where !virtualTypes.contains(entry.type) {
            if entry.mountPoint != "/" && umount2(entry.mountPoint, 0) == 0 { continue }
            if mount(nil, entry.mountPoint, nil, UInt(MS_REMOUNT | MS_RDONLY), nil) != 0 {
                left.append("\(entry.mountPoint) (\(entry.type)): \(Errno(rawValue: errno).symbolicName)")
            }
        }
        sync()
        return left
    }
}
