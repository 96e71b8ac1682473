import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What an operator sees of a stored descriptor (`ferryctl fdstore`).
public struct FDInfo: Codable, Sendable, Equatable {
    public var name: String
    /// memfd, luo-session, socket, pipe, file, directory, char-device, anon-inode, other.
    public var type: String
    public var inode: UInt64
    /// The /proc link text: a path, `memfd:NAME`, or `socket:[N]`.
    public var path: String
    public var size: Int64?
    /// For LUO sessions: the session's name.
    public var sessionName: String?

    public static func describe(_ fd: FileDescriptor, name: String) -> FDInfo {
        let status = try? FileIdentity.stat(fd)
        let link = (try? FileIdentity.linkText(fd)) ?? ""
        var info = FDInfo(name: name, type: "other", inode: UInt64(status?.st_ino ?? 0), path: link, size: nil,
                          sessionName: nil)
        if let identity = SessionIdentity.of(fd) {
            info.type = "luo-session"
            info.sessionName = identity.name
            return info
        }
        let mode = (status?.st_mode ?? 0) & S_IFMT
        switch mode {
        case S_IFSOCK: info.type = "socket"
        case S_IFIFO: info.type = "pipe"
        case S_IFDIR: info.type = "directory"
        case S_IFCHR: info.type = "char-device"
        case S_IFREG:
            let magic = try? FileIdentity.fileSystemMagic(fd)
            info.type = link.hasPrefix("/memfd:") || (magic == ferry_TMPFS_MAGIC && status?.st_nlink == 0) ? "memfd" : "file"
            info.size = Int64(status?.st_size ?? 0)
        default:
            info.type = link.hasPrefix("anon_inode:") ? "anon-inode" : "other"
        }
        return info
    }
}
