import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The emulator: a process that plays the kernel's part over a unix socket (see `EmulatorWire`).
///
/// Descriptors it hands out (the device and sessions) are socket ends whose peer the emulator
/// holds; closing the last reference is seen by the emulator as the kernel would see the file's
/// release.
public struct EmulatorBackend: LiveUpdateBackend {
    /// The emulator's control socket.
    public let socketPath: String

    public init(socketPath: String) { self.socketPath = socketPath }

    public var name: String { "emulator at \(socketPath)" }

    public func openDevice() -> Result<OwnedFD, Errno> {
        let reply: EmulatorControlReply
        do throws(SystemCallError) {
            reply = try EmulatorControl.call(socketPath: socketPath, EmulatorWire.Request(kind: .openDevice))
        } catch {
            return .failure(error.errno)
        }
        if reply.reply.errno != 0 { return .failure(Errno(rawValue: reply.reply.errno)) }
        var received = reply.descriptors
        guard received.count == 1, let device = received.take(at: 0) else { return .failure(.ioError) }
        return .success(device)
    }

    public func ioctl(_ fd: CInt, request: UInt, argument: inout RequestBuffer?) -> Errno? {
        EmulatorBackend.ioctl(fd, request: request, argument: &argument)
    }

    /// Issues an ioctl on an emulator-made descriptor; needs no control socket, so it works on a
    /// session fd a process inherited without knowing where it came from.
    public static func ioctl(_ fd: CInt, request: UInt, argument: inout RequestBuffer?) -> Errno? {
        var flags: EmulatorWire.Flags = []
        if argument == nil { flags.insert(.nullArgument) }
        var payload: CInt = -1
        let known = LiveUpdateRequest(rawValue: request)
        if known == .preserveFD, let argument, argument.bytes.count >= 8 {
            payload = argument.fd
            if FileDescriptor(rawValue: payload).isOpen { flags.insert(.payloadAttached) } else {
                flags.insert(.payloadInvalid)
            }
        }
        // The kernel reserves a descriptor before doing the work; so do we, to answer EMFILE in order.
        var reservation: OwnedFD? = nil
        if known?.returnsDescriptor == true {
            switch systemCallResult({ ferry_fcntl_int(fd, ferry_F_DUPFD_CLOEXEC, 0) }) {
            case .success(let slot): reservation = OwnedFD(adopting: slot)
            case .failure(.tooManyOpenFiles): flags.insert(.callerTableFull)
            case .failure(let code): return code
            }
        }
        let message = EmulatorWire.Request(
            kind: .ioctl, request: UInt32(truncatingIfNeeded: request), flags: flags,
            argument: argument?.bytes ?? [])
        var answer: ReceivedMessage
        do throws(SystemCallError) {
            let ours = try send(message, on: fd, payload: flags.contains(.payloadAttached) ? payload : nil)
            _ = consume reservation
            answer = try UnixSocket.receive(ours.borrowed, maximumBytes: 4096, maximumDescriptors: 1)
        } catch {
            // ENOTSOCK and the like: not an emulator descriptor; EPIPE, ECONNRESET: the emulator is gone.
            return error.errno == .brokenPipe || error.errno == .connectionReset ? .ioError : error.errno
        }
        // An empty packet is the emulator closing the reply socket unanswered (it died or dropped us).
        if answer.isEndOfFile { return .ioError }
        guard let reply = EmulatorWire.Reply.decode(answer.bytes) else { return .ioError }
        if reply.errno != 0 { return Errno(rawValue: reply.errno) }
        if var buffer = argument {
            for (index, byte) in reply.output.enumerated() where index < buffer.bytes.count { buffer.bytes[index] = byte }
            if known?.returnsDescriptor == true {
                guard let installed = answer.descriptors.take(at: 0) else { return .tooManyOpenFiles }
                buffer.fd = installed.release()
            }
            argument = buffer
        }
        return nil
    }

    /// Sends `message` on `fd` with a fresh reply socket; returns our end of it.
    private static func send(_ message: EmulatorWire.Request, on fd: CInt, payload: CInt?) throws(SystemCallError)
        -> OwnedFD
    {
        let pair = try UnixSocket.pair(.sequentialPacket)
        let ours = pair.first
        let theirs = pair.second
        // An emulator that drops a request (or stalls) must not hang the caller forever.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(ours.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var attached = [theirs.rawValue]
        if let payload { attached.append(payload) }
        try UnixSocket.send(FileDescriptor(rawValue: fd), message.encoded(), descriptors: attached)
        // Our copy of their end closes here, so the emulator holds the only one.
        _ = consume theirs
        return ours
    }

    public func unavailability(after errno: Errno) -> LiveUpdateUnavailability? {
        errno == .noSuchFileOrDirectory || errno == .connectionRefused
            ? .emulatorNotRunning(path: socketPath, errno: errno) : nil
    }
}

/// A reply on the emulator's control socket, with any descriptor it carried.
public struct EmulatorControlReply: ~Copyable {
    public var reply: EmulatorWire.Reply
    public var descriptors: OwnedFDs
}

/// Requests on the emulator's control socket: open, simulated kexec, status.
public enum EmulatorControl {
    public static func call(socketPath: String, _ request: EmulatorWire.Request) throws(SystemCallError)
        -> EmulatorControlReply
    {
        let connection = try UnixSocket.connect(path: socketPath, kind: .sequentialPacket)
        try UnixSocket.send(connection.borrowed, request.encoded())
        let answer = try UnixSocket.receive(connection.borrowed, maximumBytes: EmulatorWire.maximumPacket,
                                            maximumDescriptors: 1)
        guard let reply = EmulatorWire.Reply.decode(answer.bytes) else {
            throw SystemCallError("emulator reply", .ioError)
        }
        return EmulatorControlReply(reply: reply, descriptors: answer.descriptors)
    }

    /// Asks the emulator to perform a simulated kexec; returns its JSON report.
    public static func simulateKexec(socketPath: String, options: String = "") throws(SystemCallError) -> String {
        let answer = try call(socketPath: socketPath, EmulatorWire.Request(kind: .simulateKexec, text: options))
        if answer.reply.errno != 0 {
            throw SystemCallError("simulated kexec", Errno(rawValue: answer.reply.errno))
        }
        return answer.reply.text
    }

    /// The emulator's pid (SO_PEERCRED of its control socket): only session fds it made are sessions.
    public static func serverPID(socketPath: String) -> pid_t? {
        guard let connection = try? UnixSocket.connect(path: socketPath, kind: .sequentialPacket),
            let credentials = try? UnixSocket.peerCredentials(connection.borrowed)
        else { return nil }
        return credentials.pid
    }

    /// The emulator's state as JSON (sessions, files, profile).
    public static func status(socketPath: String) throws(SystemCallError) -> String {
        try call(socketPath: socketPath, EmulatorWire.Request(kind: .status)).reply.text
    }
}
