import LiveUpdateReports

/// Everything the metrics show, taken at one moment: the exposition is a pure function of it,
/// so the textfile and `ferryctl metrics` always agree and a test can check values directly.
public struct MetricsSnapshot: Sendable, Equatable {
    /// The kexec counter Ferry carries in the mapping (every live update that left a kernel).
    public var kexecs: UInt64 = 0
    public var totals = UpdateHistory.Totals()
    /// The newest update, if any.
    public var lastUpdate: UpdateRecord?
    /// fd store entries by unit (units with a store only).
    public var storeEntries: [String: Int] = [:]
    /// LUO sessions held in fd stores.
    public var sessionsHeld = 0
    /// Sessions that came from the previous kernel and are still in a store: each may still be
    /// unfinished (the kernel offers no way to ask whether its owner finished it).
    public var incomingSessionsHeld = 0

    public init() {}
}
