import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call and the errno it returned.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name of the call, e.g. `"memfd_create"` or `"ioctl(LIVEUPDATE_SESSION_PRESERVE_FD)"`.
    public var call: String
    public var errno: Errno

    public init(_ call: String, _ errno: Errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(errno.symbolicName) (\(errno))" }
}

extension Errno {
    /// The C name of the error, e.g. `EBUSY`, for messages that operators grep for.
    public var symbolicName: String { Errno.names[rawValue] ?? "errno \(rawValue)" }

    private static let names: [CInt: String] = [
        Glibc.EPERM: "EPERM",
        Glibc.ENOENT: "ENOENT",
        Glibc.ESRCH: "ESRCH",
        Glibc.EINTR: "EINTR",
        Glibc.EIO: "EIO",
        Glibc.ENXIO: "ENXIO",
        Glibc.E2BIG: "E2BIG",
        Glibc.ENOEXEC: "ENOEXEC",
        Glibc.EBADF: "EBADF",
        Glibc.ECHILD: "ECHILD",
        Glibc.EAGAIN: "EAGAIN",
        Glibc.ENOMEM: "ENOMEM",
        Glibc.EACCES: "EACCES",
        Glibc.EFAULT: "EFAULT",
        Glibc.ENOTBLK: "ENOTBLK",
        Glibc.EBUSY: "EBUSY",
        Glibc.EEXIST: "EEXIST",
        Glibc.EXDEV: "EXDEV",
        Glibc.ENODEV: "ENODEV",
        Glibc.ENOTDIR: "ENOTDIR",
        Glibc.EISDIR: "EISDIR",
        Glibc.EINVAL: "EINVAL",
        Glibc.ENFILE: "ENFILE",
        Glibc.EMFILE: "EMFILE",
        Glibc.ENOTTY: "ENOTTY",
        Glibc.ETXTBSY: "ETXTBSY",
        Glibc.EFBIG: "EFBIG",
        Glibc.ENOSPC: "ENOSPC",
        Glibc.ESPIPE: "ESPIPE",
        Glibc.EROFS: "EROFS",
        Glibc.EMLINK: "EMLINK",
        Glibc.EPIPE: "EPIPE",
        Glibc.EDOM: "EDOM",
        Glibc.ERANGE: "ERANGE",
        Glibc.EDEADLK: "EDEADLK",
        Glibc.ENAMETOOLONG: "ENAMETOOLONG",
        Glibc.ENOLCK: "ENOLCK",
        Glibc.ENOSYS: "ENOSYS",
        Glibc.ENOTEMPTY: "ENOTEMPTY",
        Glibc.ELOOP: "ELOOP",
        Glibc.ENOTSOCK: "ENOTSOCK",
        Glibc.EMSGSIZE: "EMSGSIZE",
        Glibc.EOPNOTSUPP: "EOPNOTSUPP",
        Glibc.ECONNRESET: "ECONNRESET",
        Glibc.ECONNREFUSED: "ECONNREFUSED",
        Glibc.ETIMEDOUT: "ETIMEDOUT",
        Glibc.EXFULL: "EXFULL"
    ]

    /// The errno for a C name such as `EBUSY`; the inverse of ``symbolicName``.
    public init?(symbolicName: String) {
        guard let code = Errno.names.first(where: { $0.value == symbolicName })?.key else { return nil }
        self.init(rawValue: code)
    }
}

/// Runs a system call, retrying while it fails with EINTR, and turns -1 into a `SystemCallError`.
///
/// This is the one place where EINTR is retried; every wrapper in FerrySystem goes through it.
@inlinable
public func systemCall<Result: FixedWidthInteger>(
    _ name: @autoclosure () -> String, _ body: () -> Result
) throws(SystemCallError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno(rawValue: Glibc.errno)
        if code == .interrupted { continue }
        throw SystemCallError(name(), code)
    }
}

/// Like `systemCall`, but returns the errno instead of throwing; for callers that branch on it.
@inlinable
public func systemCallResult<Value: FixedWidthInteger>(_ body: () -> Value) -> Result<Value, Errno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let code = Errno(rawValue: Glibc.errno)
        if code == .interrupted { continue }
        return .failure(code)
    }
}
