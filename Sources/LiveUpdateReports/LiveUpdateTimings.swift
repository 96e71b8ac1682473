/// How long each phase of a live update took, in the same words everywhere:
/// stop, serialize, preserve, kexec, restore, ready. Microseconds of the monotonic clock.
public struct LiveUpdateTimings: Codable, Sendable, Equatable {
    public var stop: UInt64?
    public var serialize: UInt64?
    public var preserve: UInt64?
    /// From the reboot call (or simulated kexec) to the new ferryd starting its restore.
    public var kexec: UInt64?
    public var restore: UInt64?
    /// From the start of the restore to the first restored service being ready.
    public var ready: UInt64?

    public init() {}

    /// Rows for a table: (phase, milliseconds).
    public var rows: [(String, Double?)] {
        [("stop", stop), ("serialize", serialize), ("preserve", preserve), ("kexec", kexec), ("restore", restore),
         ("first service ready", ready)].map { ($0.0, $0.1.map { Double($0) / 1000 }) }
    }

    /// Stop to first service ready.
    public var blackout: UInt64? {
        guard let stop, let serialize, let preserve, let kexec, let restore, let ready else { return nil }
        return stop + serialize + preserve + kexec + restore + ready
    }
}
