import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What tells a LUO session fd apart from any other, for both backends, without touching the fd's
/// state: no ioctl, no read, no write.
///
/// - Kernel: `fstatfs` gives ANON_INODE_FS_MAGIC and the /proc link is `anon_inode:[luo_session] NAME`.
/// - Emulator: the fd is a socket whose peer is bound to `\0ferry-luo:<server>:s<serial>:NAME`.
public struct SessionIdentity: Hashable, Sendable {
    public enum Backend: String, Sendable { case kernel, emulator }

    public var backend: Backend
    /// The name, or nil when the kernel cannot render the link text (names of 39+ bytes; use GET_NAME).
    public var name: String?
    /// Emulator: the process that made the socket pair (SO_PEERCRED). Only the emulator's own
    /// pid makes it a session: any process can bind a socket to an address that looks like one.
    public var makerPID: pid_t?

    public init(backend: Backend, name: String?, makerPID: pid_t? = nil) {
        self.backend = backend
        self.name = name
        self.makerPID = makerPID
    }

    /// The kernel's link-text prefix of a session fd.
    public static let kernelLinkPrefix = "anon_inode:[luo_session] "

    /// Before 7.2, dynamic_dname() rendered anon_inode names into 64 bytes: longer link texts fail
    /// with ENAMETOOLONG (per the spec; a real 7.2.13 kernel showed names of every length).
    public static let maximumLinkTextLength = 63

    /// The session identity of `fd`, or nil if it is not a LUO session (or not open).
    public static func of(_ fd: FileDescriptor) -> SessionIdentity? {
        (try? read(fd)) ?? nil
    }

    /// The same, for an fd whose fstat the caller already has (the notify path stats each
    /// stored fd once, for this and for the store's duplicate rule).
    public static func of(_ fd: FileDescriptor, status: stat) -> SessionIdentity? {
        (try? read(fd, status: status)) ?? nil
    }

    /// Like `of`, but reports why a check could not be made (e.g. ENAMETOOLONG is folded into a nil name).
    public static func read(_ fd: FileDescriptor) throws(SystemCallError) -> SessionIdentity? {
        try read(fd, status: try FileIdentity.stat(fd))
    }

    static func read(_ fd: FileDescriptor, status: stat) throws(SystemCallError) -> SessionIdentity? {
        if status.st_mode & S_IFMT == S_IFSOCK { return emulatorIdentity(fd) }
        // A session is an anon inode (no file-type bits) or, emulated, a socket: a regular file
        // (every memfd) is settled without asking for its file system.
        if status.st_mode & S_IFMT == S_IFREG { return nil }
        guard try FileIdentity.fileSystemMagic(fd) == ferry_ANON_INODE_FS_MAGIC else { return nil }
        do throws(SystemCallError) {
            let link = try FileIdentity.linkText(fd)
            guard link.hasPrefix(kernelLinkPrefix) else { return nil }
            return SessionIdentity(backend: .kernel, name: String(link.dropFirst(kernelLinkPrefix.count)))
        } catch where error.errno == .fileNameTooLong {
            // Only anon_inode names this long fail; "[luo_session] " is 14 bytes of them, so a
            // session is the likely owner. GET_NAME settles it on 7.2+.
            return SessionIdentity(backend: .kernel, name: nil)
        }
    }

    static func emulatorIdentity(_ fd: FileDescriptor) -> SessionIdentity? {
        guard let address = try? UnixSocket.peerAddress(fd),
            let parsed = EmulatorAddress.parse(address), parsed.kind == .session
        else { return nil }
        let maker = (try? UnixSocket.peerCredentials(fd))?.pid
        // Mirror kernels before 7.2, whose /proc link text of a session cannot exceed 63 bytes.
        if parsed.server.hasSuffix(EmulatorAddress.shortLinkTextMarker),
            kernelLinkPrefix.utf8.count + parsed.name.count > maximumLinkTextLength
        {
            return SessionIdentity(backend: .emulator, name: nil, makerPID: maker)
        }
        return SessionIdentity(backend: .emulator, name: String(decoding: parsed.name, as: UTF8.self), makerPID: maker)
    }
}

/// The abstract address the emulator binds its end of a handed-out descriptor to:
/// `\0ferry-luo:<server>:d<serial>` for the device, `\0ferry-luo:<server>:s<serial>:<name>` for a session.
public struct EmulatorAddress: Equatable, Sendable {
    public enum Kind: Sendable { case device, session }
    public var server: String
    public var kind: Kind
    public var serial: UInt64
    public var name: [UInt8]

    /// Ends the server field of emulators whose level has the short link-text limit.
    public static let shortLinkTextMarker = "@short-link"

    public init(server: String, kind: Kind, serial: UInt64, name: [UInt8] = []) {
        self.server = server
        self.kind = kind
        self.serial = serial
        self.name = name
    }

    public var bytes: [UInt8] {
        var out = EmulatorWire.addressPrefix + Array(server.utf8)
        out += Array((kind == .device ? ":d\(serial)" : ":s\(serial):").utf8)
        if kind == .session { out += name }
        return out
    }

    public static func parse(_ bytes: [UInt8]) -> EmulatorAddress? {
        let prefix = EmulatorWire.addressPrefix
        guard bytes.count > prefix.count, Array(bytes.prefix(prefix.count)) == prefix else { return nil }
        let rest = Array(bytes.dropFirst(prefix.count))
        guard let colon = rest.firstIndex(of: UInt8(ascii: ":")), colon + 1 < rest.count else { return nil }
        let server = String(decoding: rest[..<colon], as: UTF8.self)
        let marker = rest[colon + 1]
        let tail = rest[(colon + 2)...]
        if marker == UInt8(ascii: "d") {
            guard let serial = UInt64(String(decoding: tail, as: UTF8.self)) else { return nil }
            return EmulatorAddress(server: server, kind: .device, serial: serial)
        }
        guard marker == UInt8(ascii: "s"), let end = tail.firstIndex(of: UInt8(ascii: ":")),
            let serial = UInt64(String(decoding: tail[..<end], as: UTF8.self))
        else { return nil }
        return EmulatorAddress(server: server, kind: .session, serial: serial, name: Array(tail[(end + 1)...]))
    }
}
