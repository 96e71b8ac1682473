import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One epoll instance and the handlers of the descriptors it watches.
///
/// Confined to the thread that runs it: handlers run there, one at a time, and may watch or
/// unwatch descriptors (their own included). The loop never owns the watched descriptors:
/// whoever registers one unwatches it before closing it.
public final class EventLoop {
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: EPOLLIN.rawValue)
        public static let writable = Events(rawValue: EPOLLOUT.rawValue)
        public static let hangUp = Events(rawValue: EPOLLHUP.rawValue)
        public static let error = Events(rawValue: EPOLLERR.rawValue)
        public static let peerClosed = Events(rawValue: EPOLLRDHUP.rawValue)
    }

    public typealias Handler = (Events) -> Void

    private let epoll: OwnedFD
    private var handlers: [CInt: Handler] = [:]
    private var stopRequested = false

    public init() throws(SystemCallError) {
        epoll = OwnedFD(adopting: try systemCall("epoll_create1") { epoll_create1(CInt(EPOLL_CLOEXEC)) })
    }

    public var watchedCount: Int { handlers.count }

    /// Calls `handler` whenever `fd` has one of `events` (hang-up and error are always reported).
    public func watch(_ fd: CInt, for events: Events, handler: @escaping Handler) throws(SystemCallError) {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.fd = fd
        let operation = handlers[fd] == nil ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        _ = try systemCall("epoll_ctl") { epoll_ctl(epoll.rawValue, operation, fd, &event) }
        handlers[fd] = handler
    }

    /// A watch that ends when its owner lets it go: whoever owns the descriptor keeps this beside
    /// it and cancels it before closing the descriptor.
    public final class Watch {
        private weak var loop: EventLoop?
        private let fd: CInt
        private var active = true

        fileprivate init(loop: EventLoop, fd: CInt) {
            self.loop = loop
            self.fd = fd
        }

        /// Stops watching; only the first call acts (the number may belong to another fd later).
        public func cancel() {
            guard active else { return }
            active = false
            loop?.unwatch(fd)
        }

        deinit { cancel() }
    }

    /// `watch`, returning the watch as an owned value instead of leaving it to a later `unwatch`.
    public func ownedWatch(_ fd: CInt, for events: Events, handler: @escaping Handler) throws(SystemCallError) -> Watch {
        try watch(fd, for: events, handler: handler)
        return Watch(loop: self, fd: fd)
    }

    /// Stops watching `fd`; call it before closing `fd`.
    public func unwatch(_ fd: CInt) {
        guard handlers.removeValue(forKey: fd) != nil else { return }
        _ = epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, fd, nil)
    }

    /// Makes `run` return after the current round of handlers.
    public func stop() { stopRequested = true }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and runs the handlers of ready descriptors.
    public func runOnce(timeoutMilliseconds: CInt = -1) throws(SystemCallError) {
        var ready = [epoll_event](repeating: epoll_event(), count: 64)
        let count = try systemCall("epoll_wait") {
            epoll_wait(epoll.rawValue, &ready, CInt(ready.count), timeoutMilliseconds)
        }
        for event in ready.prefix(Int(count)) {
            // A handler earlier in this round may have unwatched this descriptor.
            guard let handler = handlers[event.data.fd] else { continue }
            handler(Events(rawValue: event.events))
        }
    }

    /// The descriptors ready right now, without running their handlers. Readiness is level-triggered,
    /// so whatever this returns is reported again by the next `runOnce`.
    public func readyNow() -> [(fd: CInt, events: Events)] {
        var ready = [epoll_event](repeating: epoll_event(), count: 256)
        let count = epoll_wait(epoll.rawValue, &ready, CInt(ready.count), 0)
        guard count > 0 else { return [] }
        return ready.prefix(Int(count)).map { ($0.data.fd, Events(rawValue: $0.events)) }
    }

    /// Runs until `stop()` is called.
    public func run() throws(SystemCallError) {
        stopRequested = false
        while !stopRequested { try runOnce() }
    }
}
