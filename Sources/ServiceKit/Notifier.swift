import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify for Swift services: talks to `$NOTIFY_SOCKET` exactly as libsystemd does, so it works
/// under ferryd and under systemd alike.
public enum Notifier {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `$NOTIFY_SOCKET`, or nil when the service was not started by a supervisor that listens.
    public static var socketPath: String? {
        guard let value = getenv("NOTIFY_SOCKET") else { return nil }
        let path = String(cString: value)
        return path.isEmpty ? nil : path
    }

    /// Sends `fields` (e.g. "READY=1\nSTATUS=up") with `descriptors` attached (the caller keeps them).
    public static func send(_ fields: String, descriptors: [CInt] = []) throws {
        guard let path = socketPath else { throw Failure(description: "NOTIFY_SOCKET is not set") }
        let socket = try UnixSocket.connect(path: path.hasPrefix("@") ? "\0" + path.dropFirst() : path, kind: .datagram)
        try UnixSocket.send(socket.borrowed, Array(fields.utf8), descriptors: descriptors)
    }

    /// FDSTORE=1 with FDNAME=: the supervisor keeps a copy of `fd` for the next start.
    public static func store(_ fd: FileDescriptor, name: String, poll: Bool = true) throws {
        try send("FDSTORE=1\nFDNAME=\(name)" + (poll ? "" : "\nFDPOLL=0"), descriptors: [fd.rawValue])
    }

    /// FDSTOREREMOVE=1: drops every stored fd called `name`.
    public static func remove(name: String) throws {
        try send("FDSTOREREMOVE=1\nFDNAME=\(name)")
    }

    public static func ready(status: String? = nil) throws {
        try send("READY=1" + (status.map { "\nSTATUS=\($0)" } ?? ""))
    }

    /// Waits until the supervisor has handled everything sent before (sd_notify_barrier).
    public static func barrier(timeoutMilliseconds: CInt = 5000) throws {
        var fds: [CInt] = [-1, -1]
        guard ferry_pipe_cloexec(&fds) == 0 else { throw Failure(description: "pipe2 failed: errno \(errno)") }
        let reader = OwnedFD(adopting: fds[0])
        do {
            let writer = OwnedFD(adopting: fds[1])
            try send("BARRIER=1", descriptors: [writer.rawValue])
        }
        var entry = pollfd(fd: reader.rawValue, events: 0, revents: 0)
        let result = poll(&entry, 1, timeoutMilliseconds)
        guard result == 1 else { throw Failure(description: "barrier timed out after \(timeoutMilliseconds) ms") }
    }
}
