import CFerry
import FerryControl
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A Varlink server inside an event loop. Each call goes to the handler with the caller's
/// credentials and a responder, which may answer at once or later (e.g. once a unit is up).
///
/// Nothing a client does can block the loop or exhaust ferryd: replies are written without
/// blocking and queued while the client does not read; a client with replies waiting is not
/// read from (so pipelining without reading stalls only that client); connections are capped
/// per uid and in total; when accept runs out of descriptors it pauses instead of spinning.
public final class VarlinkServer {
    public struct Peer: Sendable {
        public var pid: pid_t
        public var uid: uid_t
        public var isRoot: Bool { uid == 0 }
    }

    /// systemd's cap for one uid on its Varlink sockets.
    public static let connectionsPerUID = 1024
    public static let connectionsInTotal = 4096
    /// Calls are not taken from a connection while this much of its output waits.
    static let outputHighWater = 1 << 20

    /// Answers one call, once; later answers and answers to closed connections are dropped.
    public final class Responder {
        fileprivate weak var connection: Connection?
        private weak var server: VarlinkServer?
        private var answered = false
        public let oneway: Bool

        fileprivate init(_ connection: Connection, server: VarlinkServer, oneway: Bool) {
            self.connection = connection
            self.server = server
            self.oneway = oneway
        }

        public func reply(_ reply: Varlink.Reply) {
            guard !answered else { return }
            answered = true
            guard !oneway, let connection, let server else { return }
            server.send(reply.encoded(), on: connection)
        }

        public var isOpen: Bool { connection?.isOpen ?? false }

        /// Writes what waits for this caller now, blocking up to `timeout`: for a reply that
        /// must be out before this process is replaced (exec) or ends.
        public func flush(timeout: Duration = .seconds(5)) {
            guard let connection, let server else { return }
            server.flushBlocking(connection, until: MonotonicClock.now() + timeout)
        }
    }

    fileprivate final class Connection {
        let fd: CInt
        let peer: Peer
        var framer = Varlink.Framer()
        /// Calls read but not yet handed to the handler (held back while output waits).
        var calls: [[UInt8]] = []
        /// Reply bytes not yet taken by the socket.
        var output: [UInt8] = []
        var isOpen = true

        init(fd: consuming OwnedFD, peer: Peer) {
            self.fd = fd.release()
            self.peer = peer
        }
        deinit { Glibc.close(fd) }
    }

    public typealias Handler = (Varlink.Call, Peer, Responder) -> Void

    private let loop: EventLoop
    private let listener: OwnedFD
    private var connections: [CInt: Connection] = [:]
    private var connectionsByUID: [uid_t: Int] = [:]
    private let handler: Handler
    private let logger: Logger
    /// Armed while accept is paused for want of descriptors.
    private var acceptRetry: TimerFD?

    /// Listens on `path` (or adopts `listener`, e.g. after a re-exec).
    public init(loop: EventLoop, path: String, adopting adopted: consuming OwnedFD? = nil, logger: Logger,
                handler: @escaping Handler) throws(SystemCallError) {
        self.loop = loop
        self.handler = handler
        self.logger = logger
        if let socket = adopted.take() {
            self.listener = socket
        } else {
            self.listener = try UnixSocket.listen(path: path, kind: .stream)
            chmod(path, 0o666)  // reads are open to everyone; changes are checked per call with SO_PEERCRED
        }
        try watchListener()
    }

    public var listenerFD: CInt { listener.rawValue }
    public var connectionCount: Int { connections.count }

    // MARK: - Accepting

    private func watchListener() throws(SystemCallError) {
        try loop.watch(listener.rawValue, for: .readable) { [unowned self] _ in accept() }
    }

    private func accept() {
        let socket: OwnedFD
        do throws(SystemCallError) {
            socket = try UnixSocket.accept(listener.borrowed)
        } catch {
            if error.errno == .tooManyOpenFiles || error.errno == .tooManyOpenFilesInSystem || error.errno == .noMemory {
                pauseAccepting(error)
            }
            return
        }
        let credentials = (try? UnixSocket.peerCredentials(socket.borrowed)) ?? ferry_ucred(pid: 0, uid: uid_t.max, gid: gid_t.max)
        let peer = Peer(pid: credentials.pid, uid: credentials.uid)
        guard connections.count < Self.connectionsInTotal, connectionsByUID[peer.uid, default: 0] < Self.connectionsPerUID else {
            logger.notice("control socket: refused a connection from uid \(peer.uid) pid \(peer.pid): too many connections")
            return
        }
        _ = ferry_fcntl_int(socket.rawValue, F_SETFL, ferry_fcntl(socket.rawValue, F_GETFL) | O_NONBLOCK)
        let connection = Connection(fd: socket, peer: peer)
        do throws(SystemCallError) {
            try loop.watch(connection.fd, for: .readable) { [unowned self] events in service(connection, events) }
        } catch {
            return
        }
        connections[connection.fd] = connection
        connectionsByUID[peer.uid, default: 0] += 1
    }

    /// Out of descriptors: leave the listener alone (level-triggered, it would spin) and try
    /// again when a connection closes or after a second, whichever comes first.
    private func pauseAccepting(_ error: SystemCallError) {
        guard acceptRetry == nil, let timer = try? TimerFD() else { return }
        logger.warning("control socket: accept failed (\(error.errno.symbolicName)); pausing new connections")
        loop.unwatch(listener.rawValue)
        let fd = timer.descriptor.rawValue
        timer.arm(after: .seconds(1))
        acceptRetry = consume timer
        try? loop.watch(fd, for: .readable) { [unowned self] _ in resumeAccepting() }
    }

    private func resumeAccepting() {
        guard let fd = acceptRetry?.descriptor.rawValue else { return }
        loop.unwatch(fd)
        acceptRetry = nil
        try? watchListener()
    }

    // MARK: - Reading and handling calls

    private func service(_ connection: Connection, _ events: EventLoop.Events) {
        if events.contains(.writable) { flush(connection) }
        if events.contains(.readable) && connection.output.isEmpty && connection.calls.isEmpty { read(connection) }
        if events.contains(.hangUp) || events.contains(.error) {
            if connection.output.isEmpty { close(connection) }
        }
        handleCalls(connection)
    }

    private func read(_ connection: Connection) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        switch systemCallResult({ recv(connection.fd, &chunk, chunk.count, CInt(MSG_DONTWAIT)) }) {
        case .failure(.resourceTemporarilyUnavailable): return
        case .failure, .success(0): close(connection)
        case .success(let count):
            guard let messages = connection.framer.feed(chunk[0..<count]) else {
                close(connection)
                return
            }
            connection.calls += messages
        }
    }

    private func handleCalls(_ connection: Connection) {
        while connection.isOpen, !connection.calls.isEmpty, connection.output.count < Self.outputHighWater {
            let bytes = connection.calls.removeFirst()
            guard let call = Varlink.Call.decode(bytes) else {
                // Not Varlink: answer once so a confused client learns why, then hang up.
                send(Varlink.Reply.failure("org.varlink.service.InvalidParameter", ["parameter": .string("message")]).encoded(),
                     on: connection)
                connection.calls = []
                hangUpAfterOutput(connection)
                return
            }
            handler(call, connection.peer, Responder(connection, server: self, oneway: call.oneway))
        }
        updateInterest(connection)
    }

    // MARK: - Writing

    fileprivate func send(_ bytes: [UInt8], on connection: Connection) {
        guard connection.isOpen else { return }
        connection.output += bytes
        flush(connection)
    }

    private func flush(_ connection: Connection) {
        var sent = 0
        while sent < connection.output.count {
            let result = systemCallResult {
                connection.output.withUnsafeBytes {
                    Glibc.send(connection.fd, $0.baseAddress! + sent, $0.count - sent, CInt(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
            }
            guard case .success(let count) = result else {
                if case .failure(.resourceTemporarilyUnavailable) = result { break }
                close(connection)
                return
            }
            sent += count
        }
        connection.output.removeFirst(sent)
        if connection.output.isEmpty && connection.calls.isEmpty && hangingUp.contains(connection.fd) {
            close(connection)
            return
        }
        updateInterest(connection)
    }

    fileprivate func flushBlocking(_ connection: Connection, until deadline: Duration) {
        while connection.isOpen && !connection.output.isEmpty && MonotonicClock.now() < deadline {
            var entry = pollfd(fd: connection.fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, 100)
            flush(connection)
        }
    }

    private var hangingUp: Set<CInt> = []

    private func hangUpAfterOutput(_ connection: Connection) {
        hangingUp.insert(connection.fd)
        if connection.output.isEmpty { close(connection) }
    }

    /// Readable only while nothing waits to go out; writable while something does.
    private func updateInterest(_ connection: Connection) {
        guard connection.isOpen else { return }
        let events: EventLoop.Events = connection.output.isEmpty ? (connection.calls.isEmpty ? .readable : []) : .writable
        do throws(SystemCallError) {
            try loop.watch(connection.fd, for: events) { [unowned self] events in service(connection, events) }
        } catch {
            close(connection)
        }
    }

    private func close(_ connection: Connection) {
        guard connection.isOpen else { return }
        connection.isOpen = false
        loop.unwatch(connection.fd)
        hangingUp.remove(connection.fd)
        connections[connection.fd] = nil
        connectionsByUID[connection.peer.uid, default: 1] -= 1
        if connectionsByUID[connection.peer.uid] == 0 { connectionsByUID[connection.peer.uid] = nil }
        if acceptRetry != nil { resumeAccepting() }
    }
}
