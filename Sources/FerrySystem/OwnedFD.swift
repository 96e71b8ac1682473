import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with exactly one owner, which closes it when it goes away.
///
/// Ownership moves with the value (`consume`); `release()` hands the raw number to a new owner
/// who must close it. `borrowed` is a non-owning view for swift-system APIs that must not
/// outlive the owner.
public struct OwnedFD: ~Copyable, Sendable {
    public let rawValue: CInt

    /// Takes ownership of `rawValue`: from now on this value closes it.
    public init(adopting rawValue: CInt) {
        precondition(rawValue >= 0, "OwnedFD adopts only valid descriptors")
        self.rawValue = rawValue
    }

    deinit {
        // EINTR on close is not retried: Linux always releases the descriptor.
        _ = Glibc.close(rawValue)
    }

    /// Gives up ownership without closing; the caller now closes the descriptor.
    public consuming func release() -> CInt {
        let value = rawValue
        discard self
        return value
    }

    /// Closes the descriptor now, reporting an error the kernel returns (other than EINTR).
    public consuming func close() throws(SystemCallError) {
        let value = rawValue
        discard self
        if Glibc.close(value) == -1 {
            let code = Errno(rawValue: Glibc.errno)
            if code != .interrupted { throw SystemCallError("close", code) }
        }
    }

    /// A new close-on-exec descriptor for the same open file description, owned by the caller.
    public borrowing func duplicate(atLeast minimum: CInt = 3) throws(SystemCallError) -> OwnedFD {
        let fd = rawValue
        return OwnedFD(adopting: try systemCall("fcntl(F_DUPFD_CLOEXEC)") {
            ferry_fcntl_int(fd, ferry_F_DUPFD_CLOEXEC, minimum)
        })
    }

    /// A new close-on-exec descriptor for the open file `fd` refers to (which the caller keeps).
    public static func duplicating(_ fd: CInt, atLeast minimum: CInt = 3) throws(SystemCallError) -> OwnedFD {
        OwnedFD(adopting: try systemCall("fcntl(F_DUPFD_CLOEXEC)") { ferry_fcntl_int(fd, ferry_F_DUPFD_CLOEXEC, minimum) })
    }

    /// A non-owning swift-system view; valid only while this owner lives.
    public var borrowed: FileDescriptor { FileDescriptor(rawValue: rawValue) }
}

/// Several owned descriptors in one value, e.g. those received in one message.
///
/// `[OwnedFD]` cannot be written in Swift 6.3 (arrays of non-copyable values), so this owner keeps
/// raw numbers and closes whatever was not taken out when it goes away.
public struct OwnedFDs: ~Copyable, Sendable {
    private var descriptors: [CInt]

    public init() { descriptors = [] }

    /// Takes ownership of every descriptor in `rawValues`.
    public init(adopting rawValues: [CInt]) { descriptors = rawValues }

    deinit {
        for fd in descriptors where fd >= 0 { _ = Glibc.close(fd) }
    }

    public var count: Int { descriptors.count }
    public var isEmpty: Bool { descriptors.isEmpty }

    /// The raw numbers, still owned by this value (-1 where one was taken).
    public var rawValues: [CInt] { descriptors }

    public mutating func append(_ fd: consuming OwnedFD) { descriptors.append(fd.release()) }

    /// Moves the descriptor at `index` out; its slot becomes -1.
    public mutating func take(at index: Int) -> OwnedFD? {
        let fd = descriptors[index]
        guard fd >= 0 else { return nil }
        descriptors[index] = -1
        return OwnedFD(adopting: fd)
    }

    /// Moves every descriptor out as raw numbers the caller now owns.
    public consuming func releaseAll() -> [CInt] {
        let all = descriptors
        descriptors = []
        return all
    }
}

extension FileDescriptor {
    /// Whether this number names an open descriptor in this process (fcntl F_GETFD).
    public var isOpen: Bool { ferry_fcntl(rawValue, F_GETFD) != -1 }

    /// Whether close-on-exec is set.
    public var isCloseOnExec: Bool {
        let flags = ferry_fcntl(rawValue, F_GETFD)
        return flags != -1 && flags & FD_CLOEXEC != 0
    }
}

extension FileDescriptor {
    /// Sets FD_CLOEXEC (fcntl F_SETFD).
    public func setCloseOnExec() throws(SystemCallError) {
        let current = try systemCall("fcntl(F_GETFD)") { ferry_fcntl(rawValue, F_GETFD) }
        _ = try systemCall("fcntl(F_SETFD)") { ferry_fcntl_int(rawValue, F_SETFD, current | FD_CLOEXEC) }
    }
}
