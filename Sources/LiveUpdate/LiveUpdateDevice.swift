import FerrySystem
import SystemPackage

/// The open `/dev/liveupdate` (or its emulated twin): the only way to create and retrieve sessions.
///
/// The device has a single opener in the whole system. This value owns the descriptor and closes
/// it when it goes away; sessions do not depend on it and stay valid after it is closed.
public struct LiveUpdateDevice: ~Copyable {
    public let descriptor: OwnedFD
    public let backend: any LiveUpdateBackend

    /// Opens the device through `backend`.
    ///
    /// - Throws: `.anotherAgentHoldsDevice` for EBUSY, `.unavailable(why)` when the device does not
    ///   exist, `.system(EIO)` when the kernel failed to read what the previous kernel handed over.
    public static func open(_ backend: any LiveUpdateBackend) throws(LiveUpdateError) -> LiveUpdateDevice {
        switch backend.openDevice() {
        case .success(let fd):
            return LiveUpdateDevice(descriptor: fd, backend: backend)
        case .failure(.resourceBusy):
            throw LiveUpdateError(.anotherAgentHoldsDevice, operation: "open(\(LiveUpdateLimits.devicePath))")
        case .failure(let code):
            if let why = backend.unavailability(after: code) {
                throw LiveUpdateError(.unavailable(why), operation: "open(\(LiveUpdateLimits.devicePath))")
            }
            throw LiveUpdateError(.system(code), operation: "open(\(LiveUpdateLimits.devicePath))",
                                  detail: code == .ioError ? "the kernel could not restore the previous kernel's live update data" : nil)
        }
    }

    /// Creates an outgoing session, whose files go to the next kernel while its fd stays open.
    ///
    /// The corresponding ioctl is `LIVEUPDATE_IOCTL_CREATE_SESSION`. The caller owns the session.
    /// - Throws: `.invalidSessionName` (checked here), EEXIST (an outgoing session has the name),
    ///   ENOMEM/ENOSPC (limits), EMFILE.
    public func createSession(named name: String) throws(LiveUpdateError) -> LiveUpdateSession {
        try session(.createSession, name: name, direction: .outgoing)
    }

    /// Retrieves the incoming session `name` handed over by the previous kernel; once per boot.
    ///
    /// The corresponding ioctl is `LIVEUPDATE_IOCTL_RETRIEVE_SESSION`. The caller owns the session;
    /// closing it finishes it (files not retrieved are discarded).
    /// - Throws: ENOENT (no such incoming session), EINVAL (already retrieved and still open).
    public func retrieveSession(named name: String) throws(LiveUpdateError) -> LiveUpdateSession {
        try session(.retrieveSession, name: name, direction: .incoming)
    }

    private func session(_ request: LiveUpdateRequest, name: String, direction: LiveUpdateSession.Direction)
        throws(LiveUpdateError) -> LiveUpdateSession
    {
        let bytes = Array(name.utf8)
        guard (1...LiveUpdateLimits.maximumSessionNameLength).contains(bytes.count), !bytes.contains(0) else {
            throw LiveUpdateError(.invalidSessionName, operation: request.description, session: name)
        }
        var argument: RequestBuffer? = RequestBuffer(for: request)
        argument!.name = bytes
        if let code = backend.ioctl(descriptor.rawValue, request: request.rawValue, argument: &argument) {
            throw LiveUpdateError(.system(code), operation: request.description, session: name)
        }
        return LiveUpdateSession(adopting: OwnedFD(adopting: argument!.fd), name: name, direction: direction,
                                 backend: backend)
    }

    /// Issues any ioctl on the device exactly as given, for conformance tests and probes.
    public func rawIoctl(_ request: UInt, _ argument: inout RequestBuffer?) -> Errno? {
        backend.ioctl(descriptor.rawValue, request: request, argument: &argument)
    }
}
