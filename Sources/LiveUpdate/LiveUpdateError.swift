import FerrySystem
import SystemPackage

/// Why /dev/liveupdate cannot be used on this system at all.
public enum LiveUpdateUnavailability: Hashable, Sendable, CustomStringConvertible {
    /// The running kernel predates LUO (6.19 is the first release with /dev/liveupdate).
    case kernelTooOld(release: String)
    /// The kernel's build configuration (`/boot/config-<release>`) lacks an option LUO needs.
    case kernelBuiltWithout(option: String, release: String)
    /// The kernel has no kexec at all (no `/sys/kernel/kexec_loaded`), so it has no LUO either.
    case kernelWithoutKexec(release: String)
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
        case .kernelTooOld(let release):
            "live update unavailable: kernel \(release) is older than 6.19, the first Linux with the Live Update "
                + "Orchestrator; boot a 6.19 or newer kernel built with CONFIG_LIVEUPDATE, with kho=on liveupdate=on"
        case .kernelBuiltWithout(let option, let release):
            "live update unavailable: kernel \(release) was built without \(option) (/boot/config-\(release)); "
                + "boot a kernel built with CONFIG_KEXEC_HANDOVER and CONFIG_LIVEUPDATE, with kho=on liveupdate=on"
        case .kernelWithoutKexec(let release):
            "live update unavailable: kernel \(release) was built without kexec (no /sys/kernel/kexec_loaded), "
                + "so without CONFIG_KEXEC_HANDOVER and CONFIG_LIVEUPDATE; boot a kernel built with them"
        case .bootedWithoutLiveUpdate:
            "live update unavailable: the kernel was booted without liveupdate=on; add liveupdate=on (and kho=on) "
                + "to its command line and reboot"
        case .bootedWithoutKexecHandover:
            "live update unavailable: the kernel was booted without kho=on (and does not turn KHO on by default); "
                + "add kho=on to its command line and reboot"
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
