import FDStore
import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// One service unit at run time: its configuration, process, state and fd store.
public final class Service {
    public let name: UnitName
    /// Where the configuration came from; nil for a `not-found` stub (no unit file).
    public internal(set) var path: String?
    public internal(set) var config: ServiceConfig
    public internal(set) var warnings: [String]
    public internal(set) var state: ServiceState = .dead
    /// success, exit-code, signal, timeout, start-limit-hit, resources, protocol.
    public internal(set) var result = "success"
    public internal(set) var mainPID: pid_t?
    /// The process group every process of the service starts in (the main process's pid).
    public internal(set) var processGroup: pid_t?
    public internal(set) var statusText: String?
    public internal(set) var statusErrno: Int32?
    /// Why the last start could not run a program, e.g. `/opt/x: No such file or directory (ENOENT)`.
    public internal(set) var startFailure: String?
    public internal(set) var restarts = 0
    public let store: FDStore

    /// Monotonic start times within StartLimitIntervalSec, for the start-rate limit.
    var recentStarts: [Duration] = []
    /// Which ExecStart= line runs (Type=oneshot runs them in turn).
    var commandIndex = 0
    /// A stop was asked for: the next exit ends the unit instead of restarting it.
    var stopRequested = false
    /// Start again once the stop completes (restart).
    public internal(set) var startAfterStop = false
    /// Keep the store whatever FileDescriptorStorePreserve= says: a live update is stopping the
    /// unit, and if it fails the unit starts again with everything it stored.
    var holdStoreForLiveUpdate = false
    /// The restart-delay, start-timeout or stop-timeout timer, when one is armed.
    var timer: TimerFD?
    /// The ExecStartPre=, ExecStartPost= or ExecStop= process running now.
    public internal(set) var controlPID: pid_t?
    /// What the control processes are doing, and the commands still to run.
    var controlStep: ControlStep?
    var controlQueue: [ExecCommand] = []

    enum ControlStep { case startPre, startPost, stop }

    init(name: UnitName, loaded: UnitLoader.Loaded?) {
        self.name = name
        self.path = loaded?.path
        self.config = loaded?.config ?? Service.stubConfig
        self.warnings = loaded?.warnings ?? []
        self.store = FDStore(limit: self.config.fdStoreMax)
    }

    /// A unit with no file: it exists to hold restored fds, pinned, growing its limit per fd.
    static var stubConfig: ServiceConfig {
        var config = ServiceConfig()
        config.fdStorePreserve = .yes
        return config
    }

    public var isStub: Bool { path == nil }
    public var loadState: String { isStub ? "not-found" : "loaded" }

    /// Replaces the configuration (daemon-reload, or a stub's file appearing); trims the store to
    /// the new limit and returns what was dropped.
    func reconfigure(_ loaded: UnitLoader.Loaded) -> [FDStore.Entry] {
        path = loaded.path
        config = loaded.config
        warnings = loaded.warnings
        return store.truncate(to: config.fdStoreMax)
    }
}
