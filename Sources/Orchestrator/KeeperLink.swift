import FerryJSON
import FerrySystem
import Logging
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// ferryd's side of its keeper (`KeeperProcess`): starts one when a live update begins, or
/// reconnects to the one a dead ferryd left; hands it dups of fds (the caller keeps its own) and
/// the update's state; takes everything back; tells it to let go.
///
/// A packet sent is as good as held: once `sendmsg` returns, the fds ride the keeper's receive
/// queue, which outlives this process. Send failures are logged, never fatal (the keeper was
/// killed: the update goes on as it would without one).
///
/// Confined to the event-loop thread. Owns the socket to the keeper (closing it tells the keeper
/// that ferryd went away).
public final class KeeperLink {
    /// Where ferryd finds its keeper, and what to run to start one.
    public struct Configuration: Sendable {
        public var executable: String
        public var socketPath: String
        public init(executable: String, socketPath: String) {
            self.executable = executable
            self.socketPath = socketPath
        }
    }

    private let socket: OwnedFD
    private let logger: Logger
    /// The keeper's pid when this process started it.
    public let pid: pid_t?

    private init(socket: consuming OwnedFD, pid: pid_t?, logger: Logger) {
        self.socket = socket
        self.pid = pid
        self.logger = logger
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts a keeper (argv[0] `@ferryd-keeper`: systemd-shutdown spares it as it spares ferryd)
    /// and returns once it listens on its socket, so a restarted ferryd can always find it.
    static func spawn(_ configuration: Configuration, logger: Logger) throws(Failure) -> KeeperLink {
        let link: KeeperLink
        do throws(SystemCallError) {
            let pair = try UnixSocket.pair(.sequentialPacket)
            let pid = try Spawner.spawn(SpawnRequest(
                path: configuration.executable,
                arguments: ["@ferryd-keeper", KeeperProcess.modeArgument, configuration.socketPath],
                environment: [], listenDescriptors: [pair.second.rawValue]))
            link = KeeperLink(socket: pair.first, pid: pid, logger: logger)
        } catch {
            throw Failure(description: "cannot start the keeper: \(error)")
        }
        guard link.awaitReply("ready", seconds: 10) else {
            if let pid = link.pid { kill(pid, SIGKILL) }
            throw Failure(description: "the keeper did not come up on \(configuration.socketPath)")
        }
        logger.info("live update: keeper (pid \(link.pid ?? 0)) holds copies on \(configuration.socketPath) until the update is done")
        return link
    }

    /// The keeper a dead ferryd left, if one listens at `socketPath`; a stale socket file is removed.
    static func connect(_ socketPath: String, logger: Logger) -> KeeperLink? {
        guard access(socketPath, F_OK) == 0 else { return nil }
        do throws(SystemCallError) {
            let socket = try UnixSocket.connect(path: socketPath, kind: .sequentialPacket)
            return KeeperLink(socket: socket, pid: nil, logger: logger)
        } catch {
            logger.warning("a keeper socket \(socketPath) is there but nobody answers (\(error)); removing it")
            unlink(socketPath)
            return nil
        }
    }

    // MARK: Handing over

    /// Hands the keeper a dup of `fd` as `item` (the caller keeps `fd`).
    func hold(_ item: KeeperWire.Item, fd: CInt) { hold([item], fds: [fd]) }

    func hold(_ items: [KeeperWire.Item], fds: [CInt]) {
        guard !items.isEmpty else { return }
        do throws(SystemCallError) { try KeeperWire.sendItems(socket.borrowed, items, fds: fds) } catch {
            logger.error("live update: the keeper did not take \(items.count) fd(s): \(error)")
        }
    }

    /// Replaces the keeper's copy of every store with the stores as they are now.
    func holdStores(of manager: Manager) {
        forget(kind: .store)
        var items: [KeeperWire.Item] = []
        var fds: [CInt] = []
        for service in manager.services.values.sorted(by: { $0.name < $1.name }) {
            for entry in service.store.entries {
                items.append(.store(unit: service.name.full, name: entry.name))
                fds.append(entry.fd)
            }
        }
        hold(items, fds: fds)
    }

    /// The update's state as the keeper will give it to a restarted ferryd (replaced whole).
    func setState(_ state: [String: JSONValue]) {
        sendLogged(["op": .string("state"), "state": .object(state)])
    }

    /// Drops (the keeper closes) its copies of one kind, one role of session, or one name.
    func forget(kind: KeeperWire.Item.Kind? = nil, role: String? = nil, name: String? = nil) {
        var fields: [String: JSONValue] = ["op": .string("forget")]
        if let kind { fields["kind"] = .string(kind.rawValue) }
        if let role { fields["role"] = .string(role) }
        if let name { fields["name"] = .string(name) }
        sendLogged(fields)
    }

    /// Tells the keeper to close everything and exit, and waits (up to 10 s) until it has, so
    /// that a session it held is gone before anyone creates one of the same name.
    func release() {
        sendLogged(["op": .string("release")])
        if awaitReply("released", seconds: 10) {
            logger.info("live update: the keeper let go of its copies and exited")
        } else {
            logger.warning("live update: the keeper did not confirm its release")
        }
    }

    // MARK: Taking back

    /// Waits (up to 30 s) until the keeper has done everything asked before, e.g. closed a session
    /// it was told to forget before a session of the same name is created.
    func sync() {
        sendLogged(["op": .string("sync")])
        if !awaitReply("synced", seconds: 30) { logger.warning("live update: the keeper did not answer a sync") }
    }

    /// The state and dups of every item of `kind` (of all when nil) the keeper holds (it keeps its
    /// own until `release`), added to `taken`.
    func take(_ kind: KeeperWire.Item.Kind?, into taken: inout KeeperTaken) throws(Failure) {
        var fields: [String: JSONValue] = ["op": .string("take")]
        if let kind { fields["kind"] = .string(kind.rawValue) }
        sendLogged(fields)
        setReceiveTimeout(seconds: 30)
        while true {
            let message: KeeperWire.Message?
            do { message = try KeeperWire.receive(socket.borrowed) } catch {
                throw Failure(description: "reading from the keeper: \(error)")
            }
            guard var message else { throw Failure(description: "the keeper closed before handing everything back") }
            switch message.op {
            case "state": taken.state = message.fields["state"]?.object ?? [:]
            case "hold":
                let items = message.items
                for (index, item) in items.enumerated() {
                    guard let item, let fd = message.descriptors.take(at: index) else { continue }
                    taken.append(item, fd)
                }
            case "end": return
            default: break
            }
        }
    }

    // MARK: Helpers

    private func sendLogged(_ fields: [String: JSONValue]) {
        do throws(SystemCallError) { try KeeperWire.send(socket.borrowed, fields) } catch {
            logger.error("live update: cannot reach the keeper (\(fields["op"]?.string ?? "?")): \(error)")
        }
    }

    /// Waits for the packet `op`, skipping others; false on timeout or end of file.
    private func awaitReply(_ op: String, seconds: Int) -> Bool {
        setReceiveTimeout(seconds: seconds)
        while true {
            guard let message = try? KeeperWire.receive(socket.borrowed) else { return false }
            if message.op == op { return true }
        }
    }

    private func setReceiveTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// What a restarted ferryd took back from the keeper: the state and dups of every fd. Owns the
/// fds; whatever is not taken out closes with it.
struct KeeperTaken: ~Copyable {
    var state: [String: JSONValue] = [:]
    private(set) var items: [KeeperWire.Item] = []
    private var fds = OwnedFDs()

    var phase: String { state["phase"]?.string ?? "" }
    var isEmpty: Bool { items.isEmpty && state.isEmpty }

    mutating func append(_ item: KeeperWire.Item, _ fd: consuming OwnedFD) {
        items.append(item)
        fds.append(fd)
    }

    /// Moves out the fd of the session `name` retrieved from the previous kernel (role `incoming`
    /// or `service`), if one was held. An outgoing session of the same name (made before a
    /// simulated kexec) is never it.
    mutating func takeIncomingSession(named name: String) -> OwnedFD? {
        guard let index = items.lastIndex(where: { $0.kind == .session && $0.name == name && $0.role != "outgoing" }) else {
            return nil
        }
        return fds.take(at: index)
    }

    /// Moves out every store entry, in the order held: `each` gets the unit, the fd name and the fd,
    /// which it owns from then on.
    mutating func takeStores(_ each: (String, String, consuming OwnedFD) -> Void) {
        for (index, item) in items.enumerated() where item.kind == .store {
            guard let unit = item.unit, let fd = fds.take(at: index) else { continue }
            each(unit, item.name, fd)
        }
    }
}
