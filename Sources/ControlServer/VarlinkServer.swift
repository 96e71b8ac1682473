import CFerry
import FerryControl
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A Varlink server inside an event loop. Each call goes to the handler with the caller's
/// credentials and a responder, which may answer at once or later (e.g. once a unit is up).
public final class VarlinkServer {
    public struct Peer: Sendable {
        public var pid: pid_t
        public var uid: uid_t
        public var isRoot: Bool { uid == 0 }
    }

    /// Answers one call, once; later answers and answers to closed connections are dropped.
    public final class Responder {
        fileprivate weak var connection: Connection?
        private var answered = false
        public let oneway: Bool

        fileprivate init(_ connection: Connection, oneway: Bool) {
            self.connection = connection
            self.oneway = oneway
        }

        public func reply(_ reply: Varlink.Reply) {
            guard !answered else { return }
            answered = true
            guard !oneway else { return }
            connection?.send(reply.encoded())
        }

        public var isOpen: Bool { connection?.isOpen ?? false }
    }

    fileprivate final class Connection {
        let fd: CInt
        let peer: Peer
        var framer = Varlink.Framer()
        var isOpen = true
        init(fd: consuming OwnedFD, peer: Peer) {
            self.fd = fd.release()
            self.peer = peer
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(self.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { Glibc.close(fd) }

        func send(_ bytes: [UInt8]) {
            guard isOpen else { return }
            var sent = 0
            while sent < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, CInt(MSG_NOSIGNAL)) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    isOpen = false
                    return
                }
                sent += count
            }
        }
    }

    public typealias Handler = (Varlink.Call, Peer, Responder) -> Void

    private let loop: EventLoop
    private let listener: OwnedFD
    private var connections: [CInt: Connection] = [:]
    private let handler: Handler

    /// Listens on `path` (or adopts `listener`, e.g. after a re-exec).
    public init(loop: EventLoop, path: String, adopting adopted: consuming OwnedFD? = nil, handler: @escaping Handler)
        throws(SystemCallError)
    {
        self.loop = loop
        self.handler = handler
        if let socket = adopted.take() {
            self.listener = socket
        } else {
            self.listener = try UnixSocket.listen(path: path, kind: .stream)
            chmod(path, 0o666)  // reads are open to everyone; changes are checked per call with SO_PEERCRED
        }
        try loop.watch(listener.rawValue, for: .readable) { [unowned self] _ in accept() }
    }

    public var listenerFD: CInt { listener.rawValue }

    private func accept() {
        guard let socket = try? UnixSocket.accept(listener.borrowed) else { return }
        let credentials = (try? UnixSocket.peerCredentials(socket.borrowed)) ?? ferry_ucred(pid: 0, uid: uid_t.max, gid: gid_t.max)
        let connection = Connection(fd: socket, peer: Peer(pid: credentials.pid, uid: credentials.uid))
        connections[connection.fd] = connection
        do throws(SystemCallError) {
            try loop.watch(connection.fd, for: .readable) { [unowned self] _ in read(connection) }
        } catch {
            connections[connection.fd] = nil
        }
    }

    private func read(_ connection: Connection) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(connection.fd, &chunk, chunk.count, CInt(MSG_DONTWAIT))
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0, let messages = connection.framer.feed(chunk[0..<count]) else {
            close(connection)
            return
        }
        for bytes in messages {
            guard let call = Varlink.Call.decode(bytes) else {
                // Not Varlink: answer once so a confused client learns why, then hang up.
                connection.send(Varlink.Reply.failure("org.varlink.service.InvalidParameter", ["parameter": .string("message")]).encoded())
                close(connection)
                return
            }
            handler(call, connection.peer, Responder(connection, oneway: call.oneway))
            if !connection.isOpen {
                close(connection)
                return
            }
        }
    }

    private func close(_ connection: Connection) {
        connection.isOpen = false
        loop.unwatch(connection.fd)
        connections[connection.fd] = nil
    }
}
