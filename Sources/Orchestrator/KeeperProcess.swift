import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The keeper: a small process ferryd starts (`ferryd --keeper SOCKET`, the link to ferryd at fd 3)
/// when a live update begins. It holds a dup of every stored fd and every LUO session fd ferryd
/// hands it, so that ferryd dying at any step of the update or of the restore loses nothing: the
/// kernel drops a session only when its last fd closes, and the keeper's copy is one.
///
/// When ferryd goes away (end of file on the link) the keeper keeps everything and waits on SOCKET
/// (mode 0600, peers of its own uid only) for a restarted ferryd, which takes dups of everything
/// and carries on. It exits only when told (`release`), or on a signal: it never drops what it
/// holds on its own, however long nobody comes.
public enum KeeperProcess {
    /// argv[1] of a keeper.
    public static let modeArgument = "--keeper"
    /// The link to ferryd, placed by the spawner.
    static let linkDescriptor: CInt = 3

    /// Runs the keeper; `arguments` are argv after `--keeper` (the socket path). Never returns.
    public static func run(arguments: [String]) -> Never {
        guard let path = arguments.first else {
            printError("ferryd-keeper: usage: ferryd --keeper SOCKET (the link to ferryd at fd 3)")
            exit(2)
        }
        // Its own session: a terminal's signals to ferryd's group must not end the keeper.
        _ = setsid()
        ResourceLimits.raiseDescriptorLimit()
        guard FileDescriptor(rawValue: linkDescriptor).isOpen else {
            printError("ferryd-keeper: no link to ferryd at fd \(linkDescriptor)")
            exit(2)
        }
        let link = OwnedFD(adopting: linkDescriptor)
        try? link.borrowed.setCloseOnExec()
        let listener: OwnedFD
        do throws(SystemCallError) {
            listener = try UnixSocket.listen(path: path, kind: .sequentialPacket, backlog: 4)
            _ = try systemCall("chmod(\(path))") { chmod(path, 0o600) }
        } catch {
            printError("ferryd-keeper: cannot listen on \(path): \(error)")
            exit(1)
        }
        // ferryd waits for this before it stops anything: from now on a restarted ferryd finds the keeper.
        try? KeeperWire.send(link.borrowed, ["op": .string("ready")])
        var keeper = Keeper(path: path)
        keeper.serve(link: link, listener: listener)
    }
}

/// The keeper's loop: one ferryd at a time, in order.
private struct Keeper: ~Copyable {
    let path: String
    var holdings = KeeperHoldings()

    init(path: String) { self.path = path }

    /// Serves the ferryd that started it, then each ferryd that connects, one after the other.
    mutating func serve(link: consuming OwnedFD, listener: consuming OwnedFD) -> Never {
        var next: OwnedFD? = consume link
        while true {
            if let connected = next.take() { serveClient(connected) }
            next = accept(listener.borrowed)
        }
    }

    /// Answers one ferryd until it goes away (its fd closes on return).
    private mutating func serveClient(_ connected: consuming OwnedFD) {
        while true {
            let message: KeeperWire.Message?
            do {
                message = try KeeperWire.receive(connected.borrowed)
            } catch {
                log("ignoring a packet from ferryd: \(error)")
                continue
            }
            guard let message else {
                log("ferryd went away during the live update (phase \(holdings.state["phase"]?.string ?? "?")); holding \(holdings.summary), waiting on \(path)")
                return
            }
            handle(message, client: connected.borrowed)
        }
    }

    private mutating func handle(_ message: consuming KeeperWire.Message, client: FileDescriptor) {
        switch message.op {
        case "hold": hold(message)
        case "state": holdings.state = message.fields["state"]?.object ?? [:]
        case "forget":
            let kind = message.fields["kind"]?.string.flatMap(KeeperWire.Item.Kind.init(rawValue:))
            let role = message.fields["role"]?.string
            let name = message.fields["name"]?.string
            guard kind != nil || role != nil || name != nil else { return log("ignoring a forget that names neither kind, role nor name") }
            holdings.forget { (kind == nil || $0.kind == kind) && (role == nil || $0.role == role) && (name == nil || $0.name == name) }
        case "take": send(message.fields["kind"]?.string.flatMap(KeeperWire.Item.Kind.init(rawValue:)), to: client)
        case "sync": try? KeeperWire.send(client, ["op": .string("synced")])
        case "release": release(client)
        default: log("ignoring an unknown request '\(message.op)'")
        }
    }

    private mutating func hold(_ message: consuming KeeperWire.Message) {
        let items = message.items
        guard items.count == message.descriptors.count, !items.contains(where: { $0 == nil }) else {
            return log("ignoring a hold of \(items.count) item(s) with \(message.descriptors.count) fd(s)")
        }
        for (index, item) in items.enumerated() {
            guard let item, let fd = message.descriptors.take(at: index) else { continue }
            holdings.hold(item, fd)
        }
    }

    /// Dups of every item of `kind` (all when nil; the keeper keeps its own), the state first and
    /// `end` last.
    private func send(_ kind: KeeperWire.Item.Kind?, to client: FileDescriptor) {
        let chosen = holdings.items.indices.filter { kind == nil || holdings.items[$0].kind == kind }
        let descriptors = holdings.descriptors
        do throws(SystemCallError) {
            try KeeperWire.send(client, ["op": .string("state"), "state": .object(holdings.state)])
            try KeeperWire.sendItems(client, chosen.map { holdings.items[$0] }, fds: chosen.map { descriptors[$0] })
            try KeeperWire.send(client, ["op": .string("end")])
        } catch {
            log("could not hand everything to ferryd: \(error); still holding it")
        }
    }

    private func release(_ client: FileDescriptor) -> Never {
        log("released: closing \(holdings.summary)")
        _ = path.withCString { unlink($0) }
        try? KeeperWire.send(client, ["op": .string("released")])
        exit(0)
    }

    /// The next ferryd: a peer of this process's uid; others are turned away.
    private func accept(_ listener: FileDescriptor) -> OwnedFD? {
        let connected: OwnedFD
        do throws(SystemCallError) {
            connected = try UnixSocket.accept(listener)
        } catch {
            log("accept on \(path): \(error)")
            usleep(100_000)
            return nil
        }
        guard let peer = try? UnixSocket.peerCredentials(connected.borrowed), peer.uid == getuid() else {
            log("turned away a peer that is not uid \(getuid())")
            return nil
        }
        log("ferryd (pid \(peer.pid)) connected; holding \(holdings.summary)")
        return connected
    }

    private func log(_ text: String) {
        printError("ferryd-keeper[\(getpid())]: \(text)")
    }
}
