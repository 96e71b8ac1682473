import CFerry

/// The /dev/liveupdate ioctl requests (kernel-luo.md §2). Every one is `_IO(0xBA, nr)`: no size or
/// direction bits, so the numbers are the same on every architecture.
public enum LiveUpdateRequest: UInt, CaseIterable, Sendable, CustomStringConvertible {
    case createSession = 0xBA00
    case retrieveSession = 0xBA01
    case preserveFD = 0xBA40
    case retrieveFD = 0xBA41
    case finish = 0xBA42
    case getName = 0xBA43

    /// `_IO(type, nr)`: what the kernel's macro computes, for requests built by hand in tests.
    public static func encode(type: UInt8, number: UInt8) -> UInt { UInt(type) << 8 | UInt(number) }

    /// The name the kernel headers give it.
    public var description: String {
        switch self {
        case .createSession: "LIVEUPDATE_IOCTL_CREATE_SESSION"
        case .retrieveSession: "LIVEUPDATE_IOCTL_RETRIEVE_SESSION"
        case .preserveFD: "LIVEUPDATE_SESSION_PRESERVE_FD"
        case .retrieveFD: "LIVEUPDATE_SESSION_RETRIEVE_FD"
        case .finish: "LIVEUPDATE_SESSION_FINISH"
        case .getName: "LIVEUPDATE_SESSION_GET_NAME"
        }
    }

    /// The size of the request's struct, which is also the smallest `size` the kernel accepts.
    public var structSize: Int {
        switch self {
        case .createSession, .retrieveSession: MemoryLayout<ferry_luo_session_request>.size
        case .preserveFD, .retrieveFD: MemoryLayout<ferry_luo_fd_request>.size
        case .finish: MemoryLayout<ferry_luo_finish_request>.size
        case .getName: MemoryLayout<ferry_luo_get_name_request>.size
        }
    }

    /// Whether a successful call installs a new descriptor, returned in the `fd` field at offset 4.
    public var returnsDescriptor: Bool {
        self == .createSession || self == .retrieveSession || self == .retrieveFD
    }

    /// Whether the request is issued on a session fd (the others go to /dev/liveupdate).
    public var isSessionRequest: Bool { rawValue & 0xFF >= 0x40 }
}

/// Limits of the uAPI.
public enum LiveUpdateLimits {
    /// `LIVEUPDATE_SESSION_NAME_LENGTH`: names are 1 to 63 bytes plus a NUL.
    public static let sessionNameCapacity = Int(FERRY_LUO_SESSION_NAME_LENGTH)
    public static let maximumSessionNameLength = sessionNameCapacity - 1
    /// The device node.
    public static let devicePath = "/dev/liveupdate"
}
