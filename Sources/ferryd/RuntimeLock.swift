import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One ferryd per runtime directory: an exclusive flock on RUNTIME/ferryd.lock, taken before any
/// socket is bound and held for the daemon's life (across re-exec too: the descriptor is kept).
/// The file holds the owner's pid, so a second ferryd can say whom it lost to.
struct RuntimeLock: ~Copyable {
    let descriptor: OwnedFD

    struct Held: Error, CustomStringConvertible {
        var description: String
    }

    static func path(in directory: String) -> String { "\(directory)/ferryd.lock" }

    static func acquire(in directory: String) throws(Held) -> RuntimeLock {
        let path = path(in: directory)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Held(description: "cannot open \(path): \(Errno(rawValue: errno).symbolicName)") }
        let owned = OwnedFD(adopting: fd)
        if case .failure(let error) = systemCallResult({ flock(owned.rawValue, LOCK_EX | LOCK_NB) }) {
            let owner = FileIO.text(ofFile: path, limit: 32)?.split(whereSeparator: { $0.isWhitespace }).first.map(String.init) ?? "unknown"
            if error == .resourceTemporarilyUnavailable {
                throw Held(description: "another ferryd (pid \(owner)) serves \(directory)")
            }
            throw Held(description: "cannot lock \(path): \(error.symbolicName)")
        }
        _ = ftruncate(owned.rawValue, 0)
        _ = try? FileIO.writeAll(owned.borrowed, Array("\(getpid())\n".utf8), at: 0)
        return RuntimeLock(descriptor: owned)
    }

    /// The lock a re-executed ferryd inherited (same pid, so the file stays true).
    static func adopt(_ fd: CInt) -> RuntimeLock {
        _ = ferry_fcntl_int(fd, F_SETFD, FD_CLOEXEC)
        return RuntimeLock(descriptor: OwnedFD(adopting: fd))
    }
}
