import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Two connected sockets; each side is owned separately.
@frozen
public struct SocketPair: ~Copyable {
    public var first: OwnedFD
    public var second: OwnedFD
}

/// A datagram or packet received from a unix socket, with the descriptors it carried.
@frozen
public struct ReceivedMessage: ~Copyable {
    public var bytes: [UInt8]
    /// Descriptors from SCM_RIGHTS, close-on-exec, owned by this value until taken.
    public var descriptors: OwnedFDs
    /// The sender's credentials, when SO_PASSCRED is on and the kernel attached them.
    public var credentials: ferry_ucred?
    /// MSG_TRUNC: the payload was longer than the buffer.
    public var payloadTruncated: Bool
    /// MSG_CTRUNC: control data (descriptors) did not fit; the kernel dropped what did not fit.
    public var controlTruncated: Bool
    /// Zero bytes and nothing else on a stream or packet socket: the peer closed.
    public var isEndOfFile: Bool { bytes.isEmpty && descriptors.isEmpty && !payloadTruncated }
}

/// AF_UNIX sockets with descriptor passing (SCM_RIGHTS) and credentials (SCM_CREDENTIALS).
public enum UnixSocket {
    public enum Kind: Sendable {
        case stream, datagram, sequentialPacket
        var rawValue: CInt {
            switch self {
            case .stream: CInt(SOCK_STREAM.rawValue)
            case .datagram: CInt(SOCK_DGRAM.rawValue)
            case .sequentialPacket: CInt(SOCK_SEQPACKET.rawValue)
            }
        }
    }

    /// A connected pair, both ends close-on-exec.
    public static func pair(_ kind: Kind) throws(SystemCallError) -> SocketPair {
        var fds: [CInt] = [-1, -1]
        _ = try systemCall("socketpair") {
            socketpair(AF_UNIX, kind.rawValue | CInt(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return SocketPair(first: OwnedFD(adopting: fds[0]), second: OwnedFD(adopting: fds[1]))
    }

    /// A new unbound close-on-exec socket.
    public static func socket(_ kind: Kind) throws(SystemCallError) -> OwnedFD {
        OwnedFD(adopting: try systemCall("socket(AF_UNIX)") {
            Glibc.socket(AF_UNIX, kind.rawValue | CInt(SOCK_CLOEXEC.rawValue), 0)
        })
    }

    /// A socket bound to `path` (an old socket file there is removed) and listening if it is
    /// connection-oriented.
    public static func listen(path: String, kind: Kind, backlog: CInt = 128) throws(SystemCallError) -> OwnedFD {
        let fd = try socket(kind)
        _ = path.withCString { Glibc.unlink($0) }
        try bind(fd.borrowed, address: Array(path.utf8))
        if kind != .datagram {
            _ = try systemCall("listen(\(path))") { Glibc.listen(fd.rawValue, backlog) }
        }
        return fd
    }

    /// A socket connected to `path`.
    public static func connect(path: String, kind: Kind) throws(SystemCallError) -> OwnedFD {
        let fd = try socket(kind)
        let address = try makeAddress(Array(path.utf8), call: "connect(\(path))")
        _ = try systemCall("connect(\(path))") {
            withUnsafeBytes(of: address.storage) {
                Glibc.connect(fd.rawValue, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
            }
        }
        return fd
    }

    public static func accept(_ listener: FileDescriptor) throws(SystemCallError) -> OwnedFD {
        OwnedFD(adopting: try systemCall("accept4") {
            ferry_accept_cloexec(listener.rawValue)
        })
    }

    /// Binds to a path, or to an abstract address when `address` starts with a NUL byte.
    public static func bind(_ fd: FileDescriptor, address: [UInt8]) throws(SystemCallError) {
        let made = try makeAddress(address, call: "bind")
        _ = try systemCall("bind") {
            withUnsafeBytes(of: made.storage) {
                Glibc.bind(fd.rawValue, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), made.length)
            }
        }
    }

    /// The address of the peer (`getpeername`): path bytes, or NUL and the abstract name; empty if unbound.
    public static func peerAddress(_ fd: FileDescriptor) throws(SystemCallError) -> [UInt8] {
        var storage = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        _ = try systemCall("getpeername") {
            withUnsafeMutableBytes(of: &storage) {
                getpeername(fd.rawValue, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
            }
        }
        let pathLength = Int(length) - MemoryLayout<sa_family_t>.size
        guard pathLength > 0 else { return [] }
        return withUnsafeBytes(of: storage.sun_path) { Array($0.prefix(pathLength)) }
    }

    /// The credentials of the process that connected or created the peer socket (SO_PEERCRED).
    public static func peerCredentials(_ fd: FileDescriptor) throws(SystemCallError) -> ferry_ucred {
        var credentials = ferry_ucred()
        var length = socklen_t(MemoryLayout<ferry_ucred>.size)
        _ = try systemCall("getsockopt(SO_PEERCRED)") {
            getsockopt(fd.rawValue, SOL_SOCKET, ferry_SO_PEERCRED, &credentials, &length)
        }
        return credentials
    }

    public static func enablePassCredentials(_ fd: FileDescriptor) throws(SystemCallError) {
        var on: CInt = 1
        _ = try systemCall("setsockopt(SO_PASSCRED)") {
            setsockopt(fd.rawValue, SOL_SOCKET, ferry_SO_PASSCRED, &on, socklen_t(MemoryLayout<CInt>.size))
        }
    }

    /// Sends `bytes` with `descriptors` attached as SCM_RIGHTS (the caller keeps its descriptors).
    ///
    /// - Parameter nonBlocking: MSG_DONTWAIT, so a full peer queue gives EAGAIN instead of waiting.
    public static func send(
        _ fd: FileDescriptor, _ bytes: [UInt8], descriptors: [CInt] = [], nonBlocking: Bool = false
    ) throws(SystemCallError) {
        let controlLength = descriptors.isEmpty ? 0 : ferry_cmsg_space(descriptors.count * MemoryLayout<CInt>.size)
        let control = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(controlLength, 1), alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0)
        var payload = bytes
        let flags = CInt(MSG_NOSIGNAL) | (nonBlocking ? CInt(MSG_DONTWAIT) : 0)
        _ = try systemCall("sendmsg") { () -> Int in
            payload.withUnsafeMutableBytes { data in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    if controlLength > 0 {
                        message.msg_control = control.baseAddress
                        message.msg_controllen = controlLength
                        let header = ferry_cmsg_firsthdr(&message)!
                        header.pointee.cmsg_level = SOL_SOCKET
                        header.pointee.cmsg_type = CInt(SCM_RIGHTS)
                        header.pointee.cmsg_len = ferry_cmsg_len(descriptors.count * MemoryLayout<CInt>.size)
                        let data = UnsafeMutableRawPointer(ferry_cmsg_data(header)!)
                        for (index, descriptor) in descriptors.enumerated() {
                            data.storeBytes(of: descriptor, toByteOffset: index * MemoryLayout<CInt>.size, as: CInt.self)
                        }
                    }
                    return sendmsg(fd.rawValue, &message, flags)
                }
            }
        }
    }

    /// Receives one message; received descriptors are close-on-exec (MSG_CMSG_CLOEXEC).
    ///
    /// - Parameters:
    ///   - maximumBytes: payload buffer size; a longer datagram is reported as `payloadTruncated`.
    ///   - maximumDescriptors: room for this many descriptors; more are dropped by the kernel and
    ///     reported as `controlTruncated`.
    ///   - nonBlocking: MSG_DONTWAIT.
    ///   - credentials: leave room for SCM_CREDENTIALS (needs SO_PASSCRED on the socket).
    public static func receive(
        _ fd: FileDescriptor, maximumBytes: Int, maximumDescriptors: Int, nonBlocking: Bool = false,
        credentials wantsCredentials: Bool = false
    ) throws(SystemCallError) -> ReceivedMessage {
        let controlLength = max(
            ferry_cmsg_space(maximumDescriptors * MemoryLayout<CInt>.size)
                + (wantsCredentials ? ferry_cmsg_space(MemoryLayout<ferry_ucred>.size) : 0), 1)
        let control = UnsafeMutableRawBufferPointer.allocate(
            byteCount: controlLength, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0)
        var payload = [UInt8](repeating: 0, count: max(maximumBytes, 1))
        var messageFlags: CInt = 0
        var descriptors: [CInt] = []
        var credentials: ferry_ucred?
        let flags = CInt(MSG_CMSG_CLOEXEC) | (nonBlocking ? CInt(MSG_DONTWAIT) : 0)
        let count = try systemCall("recvmsg") { () -> Int in
            payload.withUnsafeMutableBytes { data in
                var vector = iovec(iov_base: data.baseAddress, iov_len: maximumBytes)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = control.baseAddress
                    message.msg_controllen = controlLength
                    let result = recvmsg(fd.rawValue, &message, flags)
                    guard result >= 0 else { return result }
                    messageFlags = message.msg_flags
                    var header = ferry_cmsg_firsthdr(&message)
                    while let current = header {
                        let dataStart = UnsafeRawPointer(ferry_cmsg_data(current)!)
                        let dataLength = Int(current.pointee.cmsg_len) - (dataStart - UnsafeRawPointer(current))
                        if current.pointee.cmsg_level == SOL_SOCKET && current.pointee.cmsg_type == CInt(SCM_RIGHTS) {
                            for index in 0..<(dataLength / MemoryLayout<CInt>.size) {
                                descriptors.append(dataStart.loadUnaligned(fromByteOffset: index * 4, as: CInt.self))
                            }
                        } else if current.pointee.cmsg_level == SOL_SOCKET
                            && current.pointee.cmsg_type == ferry_SCM_CREDENTIALS
                            && dataLength >= MemoryLayout<ferry_ucred>.size
                        {
                            credentials = dataStart.loadUnaligned(as: ferry_ucred.self)
                        }
                        header = ferry_cmsg_nxthdr(&message, current)
                    }
                    return result
                }
            }
        }
        return ReceivedMessage(
            bytes: Array(payload[0..<min(count, maximumBytes)]),
            descriptors: OwnedFDs(adopting: descriptors),
            credentials: credentials,
            payloadTruncated: messageFlags & CInt(MSG_TRUNC) != 0,
            controlTruncated: messageFlags & CInt(MSG_CTRUNC) != 0)
    }

    private struct Address {
        var storage: sockaddr_un
        var length: socklen_t
    }

    private static func makeAddress(_ path: [UInt8], call: String) throws(SystemCallError) -> Address {
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        guard path.count < capacity else { throw SystemCallError(call, .fileNameTooLong) }
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        // Abstract names are counted exactly; paths include their terminating NUL.
        let extra = path.first == 0 ? 0 : 1
        return Address(storage: storage, length: socklen_t(MemoryLayout<sa_family_t>.size + path.count + extra))
    }
}
