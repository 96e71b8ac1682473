import FDStore
import FerrySystem
import LiveUpdateReports
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Why an fd does not ride a live update, in an operator's words ("LUO cannot carry TCP
/// sockets", not a bare ENOENT).
enum LossReasons {
    /// What PRESERVE_FD's errno means for this fd.
    static func preserveFailed(_ errno: Errno?, fd: FileDescriptor) -> (type: String, reason: String) {
        let type = kind(of: fd)
        let reason: String = switch errno {
        case .noSuchFileOrDirectory?: "LUO cannot carry \(plural(type)) (the kernel has no handler for them)"
        case .resourceBusy?: "the same file is already preserved (stored twice, here or by another unit)"
        case .noSpace?: "Ferry's session is full (a kernel before 7.2 carries 128 files per session)"
        case .notSupported?: "its seals cannot be carried by this kernel"
        case .noMemory?: "the kernel has no memory left to preserve it"
        case .fileTooLarge?: "it is too large to preserve"
        case .badFileDescriptor?: "it was no longer open"
        case let other?: "PRESERVE_FD failed with \(other.symbolicName)"
        case nil: "it could not be preserved"
        }
        return (type, reason)
    }

    /// Why every member of a group is lost when one cannot be preserved (dry run and update alike).
    static func groupIncomplete(_ group: String, failed member: String, because reason: String) -> String {
        "group \(group) incomplete: fd '\(member)' cannot be preserved (\(reason)), so no member is"
    }

    /// memfd, luo-session, TCP socket, UDP socket, unix socket, pipe, file, directory, ...
    static func kind(of fd: FileDescriptor) -> String {
        let type = FDInfo.describe(fd, name: "").type
        guard type == "socket" else { return type }
        var domain: CInt = 0
        var kind: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        _ = getsockopt(fd.rawValue, SOL_SOCKET, SO_DOMAIN, &domain, &length)
        length = socklen_t(MemoryLayout<CInt>.size)
        _ = getsockopt(fd.rawValue, SOL_SOCKET, SO_TYPE, &kind, &length)
        switch (domain, kind) {
        case (AF_INET, CInt(SOCK_STREAM.rawValue)), (AF_INET6, CInt(SOCK_STREAM.rawValue)): return "TCP socket"
        case (AF_INET, CInt(SOCK_DGRAM.rawValue)), (AF_INET6, CInt(SOCK_DGRAM.rawValue)): return "UDP socket"
        case (AF_UNIX, _): return "unix socket"
        default: return "socket"
        }
    }

    static func plural(_ type: String) -> String {
        switch type {
        case "file": "regular files"
        case "directory": "directories"
        case "char-device": "character devices"
        case "other": "files of this kind"
        default: type + "s"
        }
    }
}
