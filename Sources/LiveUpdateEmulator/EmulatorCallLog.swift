import LiveUpdate
import SystemPackage

/// One call the emulated kernel saw, as the `status` request lists it.
public struct EmulatorCall: Codable, Sendable, Equatable {
    /// The ioctl's name without its prefix (CREATE_SESSION, PRESERVE_FD, RETRIEVE_FD, FINISH, …),
    /// CLOSE for the last close of a session fd, KEXEC for a simulated kexec.
    public var op: String
    public var session: String?
    public var token: UInt64?
    /// The file's size as preserved (PRESERVE_FD, RETRIEVE_FD that succeeded): tells files apart.
    public var size: Int64?
    /// The errno's symbolic name when the call failed; for CLOSE, the session's direction.
    public var result: String?
}

/// The emulated kernel's record of what it was asked, in arrival order, for tests that check the
/// order of calls (a group preserved in declared order, retrieved in reverse). It observes only:
/// the rules never read it, so it cannot weaken them. Bounded, oldest dropped first.
struct EmulatorCallLog {
    static let limit = 1000
    private(set) var calls: [EmulatorCall] = []

    mutating func record(_ request: LiveUpdateRequest, session: String?, token: UInt64? = nil, size: Int64? = nil,
                         errno: Errno?) {
        let name = request.description
            .replacingPrefix("LIVEUPDATE_IOCTL_").replacingPrefix("LIVEUPDATE_SESSION_")
        append(EmulatorCall(op: name, session: session, token: token, size: size, result: errno?.symbolicName))
    }

    mutating func record(closed session: String, direction: String) {
        append(EmulatorCall(op: "CLOSE", session: session, result: direction))
    }

    mutating func record(kexec number: Int) {
        append(EmulatorCall(op: "KEXEC", token: UInt64(number)))
    }

    private mutating func append(_ call: EmulatorCall) {
        if calls.count >= Self.limit { calls.removeFirst(calls.count - Self.limit + 1) }
        calls.append(call)
    }
}

extension String {
    fileprivate func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
