import FerrySystem
import SystemPackage

/// Why /dev/liveupdate cannot be used on this system at all.
public enum LiveUpdateUnavailability: Hashable, Sendable, CustomStringConvertible {
    /// The kernel was booted without `liveupdate=on`.
    case bootedWithoutLiveUpdate
    /// The kernel was booted without `kho=on` (and KHO is not on by default).
    case bootedWithoutKexecHandover
    /// Both parameters are on, yet the kernel registered no device: it lacks CONFIG_LIVEUPDATE,
    /// or LUO's setup failed at boot.
    case kernelWithoutLiveUpdate
    /// The kernel registered the device but `/dev` has no node for it (devtmpfs not mounted?).
    case noDeviceNode
    /// The emulator socket named in the environment does not answer.
    case emulatorNotRunning(path: String, errno: Errno)

    public var description: String {
        switch self {
        case .bootedWithoutLiveUpdate:
            "live update unavailable: the kernel was booted without liveupdate=on"
        case .bootedWithoutKexecHandover:
            "live update unavailable: the kernel was booted without kho=on"
        case .kernelWithoutLiveUpdate:
            "live update unavailable: /dev/liveupdate does not exist although kho=on and liveupdate=on are set; "
                + "the kernel lacks CONFIG_LIVEUPDATE or its LUO setup failed at boot (see dmesg)"
        case .noDeviceNode:
            "live update unavailable: the kernel has a liveupdate device but /dev/liveupdate is missing "
                + "(is devtmpfs mounted on /dev?)"
        case .emulatorNotRunning(let path, let errno):
            "live update unavailable: no LUO emulator answers at \(path) (\(errno.symbolicName))"
        }
    }
}

/// A LiveUpdate operation that failed, with everything an operator needs to act on it.
public struct LiveUpdateError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// LUO is not available on this system; see the reason.
        case unavailable(LiveUpdateUnavailability)
        /// Another process holds the single-opener device (EBUSY at open).
        case anotherAgentHoldsDevice
        /// A session name outside 1...63 bytes, refused before the ioctl.
        case invalidSessionName
        /// The descriptor is not a LUO session.
        case notASession
        /// The kernel or emulator answered with this errno.
        case system(Errno)
    }

    public var kind: Kind
    /// The ioctl or call, e.g. `LIVEUPDATE_SESSION_PRESERVE_FD` or `open(/dev/liveupdate)`.
    public var operation: String
    public var session: String?
    public var token: UInt64?
    public var detail: String?

    public init(
        _ kind: Kind, operation: String, session: String? = nil, token: UInt64? = nil, detail: String? = nil
    ) {
        self.kind = kind
        self.operation = operation
        self.session = session
        self.token = token
        self.detail = detail
    }

    /// The errno, when the failure came from the kernel or emulator.
    public var errno: Errno? {
        switch kind {
        case .system(let code): code
        case .anotherAgentHoldsDevice: .resourceBusy
        case .unavailable: .noSuchFileOrDirectory
        case .invalidSessionName: .invalidArgument
        case .notASession: nil
        }
    }

    public var description: String {
        var text = operation
        if let session { text += " session '\(session)'" }
        if let token { text += " token \(token)" }
        switch kind {
        case .unavailable(let why): text += ": \(why)"
        case .anotherAgentHoldsDevice: text += ": another live update agent holds /dev/liveupdate (EBUSY)"
        case .invalidSessionName: text += ": session names are 1 to 63 bytes"
        case .notASession: text += ": not a LUO session"
        case .system(let code): text += ": \(code.symbolicName) (\(code))"
        }
        if let detail { text += " — \(detail)" }
        return text
    }
}
