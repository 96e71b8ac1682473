import FerryControl
import FerryJSON
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The broker's socket: `io.ferry.Broker` over SOCK_SEQPACKET (see `BrokerProtocol`), each
/// caller identified once, at accept, from SO_PEERCRED and its cgroup.
///
/// Confined to the event-loop thread. Replies are sent without blocking: a client whose socket
/// buffer is full (it sends calls without reading replies) is disconnected.
public final class BrokerServer {
    let loop: EventLoop
    let broker: SessionBroker
    let logger: Logger
    private let listener: OwnedFD
    private var connections: [CInt: Connection] = [:]
    private var connectionsByUID: [UInt32: Int] = [:]
    /// The ferryd unit a pid belongs to, if any (wired by the daemon).
    public var unitOf: (Int32) -> String? = { _ in nil }

    static let connectionsInTotal = 1024
    static let connectionsPerUID = 256

    final class Connection {
        let fd: OwnedFD
        let client: ClientIdentity
        init(fd: consuming OwnedFD, client: ClientIdentity) {
            self.fd = fd
            self.client = client
        }
    }

    /// Listens at `path` (mode 0666: the policy, not the file mode, decides who gets sessions).
    ///
    /// - Parameter adopted: the listening socket a previous ferryd left (re-exec), owned from now on.
    public init(loop: EventLoop, path: String, broker: SessionBroker, logger: Logger,
                adopting adopted: consuming OwnedFD? = nil) throws(SystemCallError) {
        self.loop = loop
        self.broker = broker
        self.logger = logger
        if let socket = adopted.take() {
            listener = socket
        } else {
            listener = try UnixSocket.listen(path: path, kind: .sequentialPacket)
            _ = path.withCString { chmod($0, 0o666) }
        }
        let fd = listener.rawValue
        try loop.watch(fd, for: .readable) { [unowned self] _ in accept() }
    }

    public var connectionCount: Int { connections.count }
    /// The listening socket's number (kept across a re-exec).
    public var listenerFD: CInt { listener.rawValue }

    private func accept() {
        let socket: OwnedFD
        do throws(SystemCallError) { socket = try UnixSocket.accept(listener.borrowed) } catch { return }
        guard let credentials = try? UnixSocket.peerCredentials(socket.borrowed) else { return }
        let client = ClientIdentity(uid: credentials.uid, pid: credentials.pid, cgroup: ClientIdentity.cgroup(of: credentials.pid),
                                    unit: unitOf(credentials.pid))
        guard connections.count < Self.connectionsInTotal, connectionsByUID[client.uid, default: 0] < Self.connectionsPerUID else {
            logger.notice("broker: refused a connection from \(client): too many connections")
            return
        }
        let raw = socket.rawValue
        let connection = Connection(fd: socket, client: client)
        do throws(SystemCallError) {
            try loop.watch(raw, for: .readable) { [unowned self] _ in serve(connection) }
        } catch {
            return
        }
        connections[raw] = connection
        connectionsByUID[client.uid, default: 0] += 1
    }

    private func serve(_ connection: Connection) {
        var message: ReceivedMessage
        do throws(SystemCallError) {
            message = try UnixSocket.receive(connection.fd.borrowed, maximumBytes: BrokerProtocol.maximumPacket,
                                             maximumDescriptors: 1, nonBlocking: true)
        } catch {
            if error.errno == .wouldBlock { return }
            return close(connection)
        }
        if message.isEndOfFile { return close(connection) }
        let attached = message.descriptors.isEmpty ? nil : message.descriptors.take(at: 0)
        let answer: BrokerCalls.Answer
        if message.payloadTruncated || message.controlTruncated {
            answer = .init(BrokerCalls.failure(.invalidParameter, "message too long or too many fds"))
        } else if let call = Varlink.Call.decode(BrokerProtocol.payload(message.bytes)) {
            answer = BrokerCalls.answer(call, attached: attached, broker: broker, client: connection.client)
        } else {
            answer = .init(BrokerCalls.failure(.invalidParameter, "not a Varlink call"))
        }
        send(answer, on: connection)
    }

    /// Sends the reply with its fd attached; the answer (and its fd: the client has its own now)
    /// goes away only after the send.
    private func send(_ answer: consuming BrokerCalls.Answer, on connection: Connection) {
        do throws(SystemCallError) {
            try UnixSocket.send(connection.fd.borrowed, answer.reply.encoded(), descriptors: answer.descriptors.rawValues,
                                nonBlocking: true)
        } catch {
            logger.notice("broker: reply to \(connection.client) failed (\(error)); disconnecting it")
            close(connection)
        }
        _ = consume answer
    }

    private func close(_ connection: Connection) {
        let raw = connection.fd.rawValue
        loop.unwatch(raw)
        connections[raw] = nil
        connectionsByUID[connection.client.uid, default: 1] -= 1
        if connectionsByUID[connection.client.uid] == 0 { connectionsByUID[connection.client.uid] = nil }
    }
}
