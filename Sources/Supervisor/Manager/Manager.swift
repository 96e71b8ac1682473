import FDStore
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor: the three parts that keep units, and the notify socket that feeds them.
///
/// - `units` (UnitRegistry): which units exist, from which files; daemon-reload.
/// - `processes` (ProcessLifecycle): start, stop, exits, Restart=, timers.
/// - `stores` (StoreKeeper): every unit's fd store, poll watches, pinning.
/// - `jobs` (JobEngine): starts and stops in dependency order.
///
/// Confined to the event-loop thread. Everything it learns (a child exited, a datagram arrived,
/// a timer fired) comes through the loop; `observeStates` hears of every state change.
public final class Manager {
    public let loop: EventLoop
    public let logger: Logger
    public let notifySocketPath: String
    let notifySocket: OwnedFD
    let states: UnitStates
    public let units: UnitRegistry
    public let processes: ProcessLifecycle
    public let stores: StoreKeeper
    /// Starts and stops in dependency order (Requires=, Wants=, After=, Before=, Conflicts=).
    public let jobs: JobEngine
    /// Every unit's stdout and stderr, labelled and kept for `ferryctl logs`.
    public let output: UnitOutput
    /// Kexecs this system went through (carried in the live-update mapping).
    public var kexecCount: UInt32 = 0
    /// Datagrams handled on the notify socket, for benchmarks and status.
    public internal(set) var notifyMessages = 0
    /// Hears each `X_FERRY_PREPARED=1` / `X_FERRY_REFUSED=` a unit sends (the live update's barrier).
    public var onPrepareAnswer: ((Service, PrepareAnswer) -> Void)?

    public init(loop: EventLoop, loader: UnitLoader, notifySocketPath: String, logger: Logger,
                adoptingNotifySocket adopted: consuming OwnedFD? = nil) throws(SystemCallError) {
        self.loop = loop
        self.logger = logger
        self.notifySocketPath = notifySocketPath
        states = UnitStates(logger: logger)
        units = UnitRegistry(loader: loader, states: states, logger: logger)
        processes = ProcessLifecycle(loop: loop, units: units, states: states, notifySocketPath: notifySocketPath,
                                     logger: logger)
        stores = StoreKeeper(loop: loop, units: units, states: states, logger: logger)
        jobs = JobEngine(units: units, processes: processes, states: states, logger: logger)
        output = UnitOutput(loop: loop, logger: logger)
        processes.output = output
        if let socket = adopted.take() {
            self.notifySocket = socket
        } else {
            let socket = try UnixSocket.listen(path: notifySocketPath, kind: .datagram)
            // Services of any User= send here; each datagram is told apart by its credentials.
            chmod(notifySocketPath, 0o666)
            try UnixSocket.enablePassCredentials(socket.borrowed)
            var size: CInt = 8 << 20
            _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
            self.notifySocket = socket
        }
        try loop.watch(notifySocket.rawValue, for: .readable) { [unowned self] _ in receiveNotifications() }
    }

    /// The notify socket's descriptor (kept open across re-exec).
    public var notifySocketFD: CInt { notifySocket.rawValue }

    /// Every unit known now.
    public var services: [UnitName: Service] { units.services }

    /// Calls `observer` after every state change of any unit.
    public func observeStates(_ observer: @escaping (Service) -> Void) { states.observe(observer) }
}
