import CFerry
import FerrySystem
import FoundationEssentials
import LiveUpdate
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Serves the emulated kernel on a unix socket: the control socket answers open, simulated kexec
/// and status; every handed-out device or session fd is one end of a socket pair whose other end
/// this server keeps and watches, so requests on it and its final close reach the emulated kernel.
///
/// One thread runs `run()`; `stopHandle` may be used from any thread. Malformed packets are dropped
/// with their descriptors closed, and a client that vanishes only loses what it owned.
public final class EmulatorServer {
    public let kernel: EmulatedKernel
    public let socketPath: String
    public let stopHandle: StopHandle
    private let logger: Logger
    private let loop: EventLoop
    private let listener: OwnedFD
    private let serverID: String
    private var endpoints: [CInt: Endpoint] = [:]
    private var nextSerial: UInt64 = 1
    private var reaping = false

    /// A socket end the server owns, and what it stands for.
    private final class Endpoint {
        enum Role {
            case control
            case device
            case session(EmulatedSession)
        }
        let fd: CInt
        let role: Role
        init(fd: consuming OwnedFD, role: Role) {
            self.fd = fd.release()
            self.role = role
        }
        deinit { Glibc.close(fd) }
    }

    /// Stops a running server from another thread.
    public struct StopHandle: Sendable {
        let eventFD: CInt
        public func stop() {
            var one: UInt64 = 1
            _ = Glibc.write(eventFD, &one, 8)
        }
    }

    private let wakeFD: OwnedFD

    public init(socketPath: String, profile: EmulatorProfile, logger: Logger = Logger(label: "ferry.luo-emulator"))
        throws(SystemCallError)
    {
        self.kernel = EmulatedKernel(profile: profile)
        self.socketPath = socketPath
        self.logger = logger
        self.loop = try EventLoop()
        self.listener = try UnixSocket.listen(path: socketPath, kind: .sequentialPacket)
        self.wakeFD = OwnedFD(adopting: try systemCall("eventfd") { eventfd(0, CInt(EFD_CLOEXEC)) })
        self.stopHandle = StopHandle(eventFD: wakeFD.rawValue)
        // The suffix tells session detection which link-text rule this emulator's level follows.
        self.serverID = "\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            + (profile.shortSessionLinkText ? EmulatorAddress.shortLinkTextMarker : "")
        try loop.watch(listener.rawValue, for: .readable) { [unowned self] _ in acceptControl() }
        try loop.watch(wakeFD.rawValue, for: .readable) { [unowned self] _ in loop.stop() }
    }

    deinit {
        _ = socketPath.withCString { unlink($0) }
    }

    /// Serves until `stopHandle.stop()`.
    public func run() throws(SystemCallError) {
        logger.info("LUO emulator serving \(socketPath) with profile \(kernel.profile.level.rawValue)")
        try loop.run()
    }

    // MARK: - Control connections

    private func acceptControl() {
        guard let connection = try? UnixSocket.accept(listener.borrowed) else { return }
        register(Endpoint(fd: connection, role: .control))
    }

    private func register(_ endpoint: Endpoint) {
        endpoints[endpoint.fd] = endpoint
        do throws(SystemCallError) {
            try loop.watch(endpoint.fd, for: [.readable]) { [unowned self] events in
                serve(endpoint, events: events)
            }
        } catch {
            logger.warning("cannot watch emulator socket: \(error)")
            endpoints[endpoint.fd] = nil
        }
    }

    private func serve(_ endpoint: Endpoint, events: EventLoop.Events) {
        while endpoints[endpoint.fd] != nil {
            var message: ReceivedMessage
            do throws(SystemCallError) {
                message = try UnixSocket.receive(FileDescriptor(rawValue: endpoint.fd), maximumBytes: 65536,
                                                 maximumDescriptors: 2, nonBlocking: true)
            } catch {
                if error.errno == .resourceTemporarilyUnavailable { return }
                closeEndpoint(endpoint)
                return
            }
            if message.isEndOfFile {
                closeEndpoint(endpoint)
                return
            }
            guard let request = EmulatorWire.Request.decode(message.bytes), !message.payloadTruncated else {
                logger.warning("dropped a malformed packet of \(message.bytes.count) bytes")
                continue
            }
            switch endpoint.role {
            case .control: serveControl(request, on: endpoint, descriptors: message.descriptors)
            case .device, .session:
                serveIoctl(request, on: endpoint, descriptors: &message.descriptors, truncated: message.controlTruncated)
            }
        }
    }

    /// Handles every close that has already happened before answering a request, as the kernel
    /// would have released those files synchronously in close(2): a name freed by closing a session
    /// is free for the very next CREATE_SESSION.
    private func reapHangUps() {
        guard !reaping else { return }
        reaping = true
        defer { reaping = false }
        while true {
            var handled = 0
            for (fd, events) in loop.readyNow() where events.contains(.hangUp) {
                guard let endpoint = endpoints[fd] else { continue }
                if case .control = endpoint.role { continue }
                serve(endpoint, events: events)
                handled += 1
            }
            if handled == 0 { return }
        }
    }

    private func serveControl(_ request: EmulatorWire.Request, on endpoint: Endpoint, descriptors: consuming OwnedFDs) {
        reapHangUps()
        let connection = FileDescriptor(rawValue: endpoint.fd)
        switch request.kind {
        case .openDevice:
            if let code = kernel.openDevice() {
                reply(on: connection, EmulatorWire.Reply(errno: code.rawValue))
                return
            }
            guard let device = handOut(.device) else {
                kernel.deviceClosed()
                reply(on: connection, EmulatorWire.Reply(errno: Errno.noMemory.rawValue))
                return
            }
            if !reply(on: connection, EmulatorWire.Reply(), attaching: device.rawValue) {
                closeEndpoint(endpoints[device.peer]!)
            }
        case .simulateKexec:
            // Options, space-separated: `incompatible`; `lose=NAME` (fault injection: that session's
            // data does not survive, as if its handler failed).
            let words = request.text.split(separator: " ").map(String.init)
            let losing = Set(words.filter { $0.hasPrefix("lose=") }.map { String($0.dropFirst(5)) })
            let report = simulateKexec(incompatible: words.contains("incompatible"), losing: losing)
            reply(on: connection, EmulatorWire.Reply(text: Self.json(report)))
        case .status:
            reply(on: connection, EmulatorWire.Reply(text: Self.json(kernel.status)))
        case .ioctl:
            reply(on: connection, EmulatorWire.Reply(errno: Errno.inappropriateIOCTLForDevice.rawValue))
        }
    }

    // MARK: - ioctls on handed-out descriptors

    private func serveIoctl(_ request: EmulatorWire.Request, on endpoint: Endpoint, descriptors: inout OwnedFDs,
                            truncated: Bool) {
        reapHangUps()
        guard request.kind == .ioctl, descriptors.count >= 1, let replyFD = descriptors.take(at: 0) else {
            logger.warning("dropped a request without a reply socket")
            return
        }
        if truncated {
            // This process is out of descriptors: the emulated kernel is out of memory, as far as
            // the caller can tell. (Without this the missing payload would look like EBADF.)
            logger.warning("out of descriptors receiving a request (MSG_CTRUNC); answering ENOMEM")
            reply(on: replyFD.borrowed, EmulatorWire.Reply(errno: Errno.noMemory.rawValue))
            return
        }
        let argument: [UInt8]? = request.flags.contains(.nullArgument) ? nil : request.argument
        var payload: OwnedFD? = nil
        if request.flags.contains(.payloadAttached), descriptors.count >= 2 { payload = descriptors.take(at: 1) }
        let outcome: EmulatedKernel.Outcome
        switch endpoint.role {
        case .device:
            outcome = kernel.deviceIoctl(request: request.request, argument: argument, flags: request.flags)
        case .session(let session):
            outcome = kernel.sessionIoctl(session, request: request.request, argument: argument, payload: payload.take(),
                                          flags: request.flags)
        case .control:
            return
        }
        deliver(outcome, to: replyFD.borrowed)
    }

    private func deliver(_ outcome: EmulatedKernel.Outcome, to replyFD: FileDescriptor) {
        if let code = outcome.errno {
            reply(on: replyFD, EmulatorWire.Reply(errno: code.rawValue))
            return
        }
        switch outcome.handOut {
        case nil:
            reply(on: replyFD, EmulatorWire.Reply(output: outcome.output))
        case .file(let file):
            // Sending the held descriptor shares its open file: a second retrieve gives the same file.
            reply(on: replyFD, EmulatorWire.Reply(output: outcome.output), attaching: file.fd)
        case .session(let session):
            guard let handed = handOut(.session(session)) else {
                kernel.sessionClosed(session)
                reply(on: replyFD, EmulatorWire.Reply(errno: Errno.noMemory.rawValue))
                return
            }
            // If the caller is gone the session dies with the reply, as the kernel's EFAULT path does.
            if !reply(on: replyFD, EmulatorWire.Reply(output: outcome.output), attaching: handed.rawValue) {
                closeEndpoint(endpoints[handed.peer]!)
            }
        }
    }

    /// The caller's end of a new socket pair; ours is bound to an address naming what it is.
    private struct HandedOut: ~Copyable {
        let fd: OwnedFD
        let peer: CInt
        var rawValue: CInt { fd.rawValue }
    }

    private func handOut(_ role: Endpoint.Role) -> HandedOut? {
        let address: EmulatorAddress
        switch role {
        case .device: address = EmulatorAddress(server: serverID, kind: .device, serial: takeSerial())
        case .session(let session):
            address = EmulatorAddress(server: serverID, kind: .session, serial: takeSerial(), name: session.name)
        case .control: return nil
        }
        do throws(SystemCallError) {
            let pair = try UnixSocket.pair(.sequentialPacket)
            let ours = pair.first
            let theirs = pair.second
            try UnixSocket.bind(ours.borrowed, address: address.bytes)
            let endpoint = Endpoint(fd: ours, role: role)
            register(endpoint)
            return HandedOut(fd: theirs, peer: endpoint.fd)
        } catch {
            logger.warning("cannot hand out an emulated descriptor: \(error)")
            return nil
        }
    }

    private func takeSerial() -> UInt64 {
        defer { nextSerial += 1 }
        return nextSerial
    }

    private func closeEndpoint(_ endpoint: Endpoint) {
        loop.unwatch(endpoint.fd)
        endpoints[endpoint.fd] = nil
        switch endpoint.role {
        case .control: break
        case .device: kernel.deviceClosed()
        case .session(let session): kernel.sessionClosed(session)
        }
    }

    @discardableResult
    private func reply(on fd: FileDescriptor, _ reply: EmulatorWire.Reply, attaching descriptor: CInt? = nil) -> Bool {
        do throws(SystemCallError) {
            try UnixSocket.send(fd, reply.encoded(), descriptors: descriptor.map { [$0] } ?? [], nonBlocking: true)
            return true
        } catch {
            logger.debug("reply not delivered: \(error)")
            return false
        }
    }

    // MARK: - Simulated kexec

    private func simulateKexec(incompatible: Bool, losing: Set<String> = []) -> KexecReport {
        // Requests already queued are served first, then closes already made are noticed, so the
        // kexec sees the same state the kernel would at reboot().
        for endpoint in Array(endpoints.values) where endpoints[endpoint.fd] != nil {
            if case .control = endpoint.role { continue }
            serve(endpoint, events: .readable)
        }
        var open: Set<UInt64> = []
        for endpoint in endpoints.values {
            if case .session(let session) = endpoint.role, session.direction == .outgoing, !Self.peerClosed(endpoint.fd),
                !losing.contains(String(decoding: session.name, as: UTF8.self))
            {
                open.insert(session.serial)
            }
        }
        let report = kernel.simulateKexec(openSessions: open, incompatible: incompatible)
        // Every fd handed out before is from the previous boot now: cut them all off.
        for endpoint in Array(endpoints.values) {
            if case .control = endpoint.role { continue }
            loop.unwatch(endpoint.fd)
            endpoints[endpoint.fd] = nil
        }
        logger.info("simulated kexec \(report.liveUpdateNumber): carried \(report.sessions.count) session(s)")
        for violation in report.violations { logger.warning("\(violation)") }
        return report
    }

    private static func peerClosed(_ fd: CInt) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLHUP) != 0
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
