import FerrySystem
import SystemPackage

/// One LUO session: a named set of preserved files, outgoing (made in this boot, carried to the
/// next kernel while its fd stays open) or incoming (handed over by the previous kernel).
///
/// This value owns the session descriptor. Closing an outgoing session drops everything preserved
/// in it; closing an incoming one finishes it.
public struct LiveUpdateSession: ~Copyable {
    public enum Direction: String, Sendable {
        case outgoing, incoming
    }

    public let descriptor: OwnedFD
    /// The name it was created or retrieved with (or read back from the fd).
    public let name: String
    /// Nil when adopted from an inherited fd whose direction this process cannot know.
    public let direction: Direction?
    public let backend: any LiveUpdateBackend

    public init(adopting descriptor: consuming OwnedFD, name: String, direction: Direction?,
                backend: any LiveUpdateBackend) {
        self.descriptor = descriptor
        self.name = name
        self.direction = direction
        self.backend = backend
    }

    /// Adopts a session fd received from elsewhere (LISTEN_FDS, SCM_RIGHTS): finds its backend and
    /// name from the fd itself.
    ///
    /// - Throws: `.notASession` when the fd is not a LUO session of either backend.
    public static func adopt(_ descriptor: consuming OwnedFD) throws(LiveUpdateError) -> LiveUpdateSession {
        guard let identity = SessionIdentity.of(descriptor.borrowed) else {
            throw LiveUpdateError(.notASession, operation: "adopt session fd \(descriptor.rawValue)")
        }
        let backend: any LiveUpdateBackend = identity.backend == .kernel ? KernelBackend() : InheritedEmulatorBackend()
        var name = identity.name ?? ""
        if identity.name == nil {
            // The /proc link was too long to read; GET_NAME (7.2+) still tells.
            name = (try? readName(descriptor.rawValue, backend: backend)) ?? ""
        }
        return LiveUpdateSession(adopting: descriptor, name: name, direction: nil, backend: backend)
    }

    /// Preserves `fd` under `token` for the next kernel. LUO keeps its own reference: the caller
    /// may close `fd` afterwards. A memfd's size is frozen from now until the session is closed.
    ///
    /// The corresponding ioctl is `LIVEUPDATE_SESSION_PRESERVE_FD`.
    /// - Throws: EEXIST (token used in this session), ENOSPC (session full), EBADF, ENOENT (this kind
    ///   of file cannot be preserved), EBUSY (file already preserved somewhere), EINVAL (incoming session).
    public func preserve(_ fd: FileDescriptor, token: UInt64) throws(LiveUpdateError) {
        var argument: RequestBuffer? = RequestBuffer(for: .preserveFD)
        argument!.fd = fd.rawValue
        argument!.token = token
        try issue(.preserveFD, &argument, token: token)
    }

    /// Retrieves the file preserved under `token`; asking again gives another fd for the same open file.
    /// The caller owns the returned close-on-exec descriptor.
    ///
    /// The corresponding ioctl is `LIVEUPDATE_SESSION_RETRIEVE_FD`.
    /// - Throws: ENOENT (unknown token, or the session is finished), EINVAL (outgoing session).
    public func retrieve(token: UInt64) throws(LiveUpdateError) -> OwnedFD {
        var argument: RequestBuffer? = RequestBuffer(for: .retrieveFD)
        argument!.token = token
        try issue(.retrieveFD, &argument, token: token)
        let fd = OwnedFD(adopting: argument!.fd)
        // Retrieved fds come back close-on-exec from the kernel; make sure of it regardless of backend.
        try? fd.borrowed.setCloseOnExec()
        return fd
    }

    /// Tells the kernel this incoming session is restored: files never retrieved are discarded;
    /// retrieved ones stay valid. Repeating it is harmless.
    ///
    /// The corresponding ioctl is `LIVEUPDATE_SESSION_FINISH`.
    public func finish() throws(LiveUpdateError) {
        var argument: RequestBuffer? = RequestBuffer(for: .finish)
        try issue(.finish, &argument, token: nil)
    }

    /// The session's name as the kernel knows it: GET_NAME (7.2+), else the /proc link text.
    ///
    /// - Throws: on kernels before 7.2, ENAMETOOLONG when the name is 39 bytes or longer (the
    ///   kernel cannot render the link text); `.notASession` when the fd is not a session.
    public func kernelName() throws(LiveUpdateError) -> String {
        try Self.readName(descriptor.rawValue, backend: backend)
    }

    /// The kernel's name of the session `fd` (either backend), without adopting it.
    public static func readName(fd: CInt) throws(LiveUpdateError) -> String {
        let backend: any LiveUpdateBackend = SessionIdentity.of(FileDescriptor(rawValue: fd))?.backend == .emulator
            ? InheritedEmulatorBackend() : KernelBackend()
        return try readName(fd, backend: backend)
    }

    static func readName(_ fd: CInt, backend: any LiveUpdateBackend) throws(LiveUpdateError) -> String {
        var argument: RequestBuffer? = RequestBuffer(for: .getName)
        let code = backend.ioctl(fd, request: LiveUpdateRequest.getName.rawValue, argument: &argument)
        if code == nil { return String(decoding: argument!.name, as: UTF8.self) }
        guard code == .invalidArgument else {
            throw LiveUpdateError(.system(code!), operation: LiveUpdateRequest.getName.description)
        }
        // Before 7.2 GET_NAME does not exist (EINVAL): fall back to the link text.
        let identity: SessionIdentity?
        do throws(SystemCallError) {
            identity = try SessionIdentity.read(FileDescriptor(rawValue: fd))
        } catch {
            throw LiveUpdateError(.system(error.errno), operation: error.call)
        }
        guard let identity else {
            throw LiveUpdateError(.notASession, operation: "read session name of fd \(fd)")
        }
        guard let name = identity.name else {
            throw LiveUpdateError(.system(.fileNameTooLong), operation: "readlink(/proc/self/fd/\(fd))",
                                  detail: "kernels before 7.2 cannot show session names of 39 bytes or more")
        }
        return name
    }

    /// Issues any ioctl on this session exactly as given, for conformance tests and probes.
    public func rawIoctl(_ request: UInt, _ argument: inout RequestBuffer?) -> Errno? {
        backend.ioctl(descriptor.rawValue, request: request, argument: &argument)
    }

    /// Gives up ownership of the session fd (to store it, pass it on, or keep it past this value).
    public consuming func releaseDescriptor() -> OwnedFD { descriptor }

    private func issue(_ request: LiveUpdateRequest, _ argument: inout RequestBuffer?, token: UInt64?)
        throws(LiveUpdateError)
    {
        if let code = backend.ioctl(descriptor.rawValue, request: request.rawValue, argument: &argument) {
            throw LiveUpdateError(.system(code), operation: request.description, session: name, token: token)
        }
    }
}

/// The emulator backend for descriptors inherited from elsewhere: ioctls need no control socket.
struct InheritedEmulatorBackend: LiveUpdateBackend {
    var name: String { "emulator (inherited session)" }
    func openDevice() -> Result<OwnedFD, Errno> { .failure(.noSuchFileOrDirectory) }
    func ioctl(_ fd: CInt, request: UInt, argument: inout RequestBuffer?) -> Errno? {
        EmulatorBackend.ioctl(fd, request: request, argument: &argument)
    }
    func unavailability(after errno: Errno) -> LiveUpdateUnavailability? { nil }
}
