/// A unit's state in systemd's words: the active state and the finer sub-state.
public struct ServiceState: Equatable, Sendable, Codable, CustomStringConvertible {
    public enum Active: String, Sendable, Codable {
        case inactive, activating, active, reloading, deactivating, failed
    }

    public enum Sub: String, Sendable, Codable {
        case dead
        /// Dead, but a store that outlives the process keeps the unit (FileDescriptorStorePreserve=yes).
        case deadResourcesPinned = "dead-resources-pinned"
        case start, running, exited, reload
        case startPre = "start-pre"
        case startPost = "start-post"
        /// ExecStop= runs.
        case stop
        case stopSigterm = "stop-sigterm"
        case stopSigkill = "stop-sigkill"
        case autoRestart = "auto-restart"
        case failed
    }

    public var active: Active
    public var sub: Sub

    public init(_ active: Active, _ sub: Sub) {
        self.active = active
        self.sub = sub
    }

    public static let dead = ServiceState(.inactive, .dead)
    public static let pinned = ServiceState(.inactive, .deadResourcesPinned)
    public static let starting = ServiceState(.activating, .start)
    public static let startingPre = ServiceState(.activating, .startPre)
    public static let startingPost = ServiceState(.activating, .startPost)
    public static let stoppingCommand = ServiceState(.deactivating, .stop)
    public static let running = ServiceState(.active, .running)
    public static let exited = ServiceState(.active, .exited)
    public static let reloading = ServiceState(.reloading, .reload)
    public static let stopping = ServiceState(.deactivating, .stopSigterm)
    public static let killing = ServiceState(.deactivating, .stopSigkill)
    public static let autoRestart = ServiceState(.activating, .autoRestart)
    public static let failed = ServiceState(.failed, .failed)

    /// No process runs and nothing is pending.
    public var isAtRest: Bool { active == .inactive || active == .failed }
    /// Waiting for something to finish (start or stop).
    public var isTransient: Bool { active == .activating || active == .deactivating }

    public var description: String { "\(active.rawValue) (\(sub.rawValue))" }
}
