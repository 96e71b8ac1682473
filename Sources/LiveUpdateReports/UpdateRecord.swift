/// One live update as the history keeps it: `ferryctl history --json`, `ferryctl last-update
/// --json`, the metrics and the timeline picture all read this. Schema version 1; fields are only
/// ever added (docs/observability.md). Durations and offsets are integer microseconds; offsets
/// count from the moment the update began stopping units.
public struct UpdateRecord: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public enum Outcome: String, Codable, Sendable, CaseIterable {
        /// The kexec happened (or was rehearsed) and the restore ran; losses are listed apart.
        case succeeded
        /// Failed after units were stopped: nothing left the kernel, the units started again.
        case rolledBack = "rolled-back"
        /// Refused before anything changed.
        case refused
    }

    /// stop, serialize, preserve, kexec, restore, ready (first service ready), in that order.
    public struct Phase: Codable, Sendable, Equatable {
        public var name: String
        public var startUs: UInt64
        public var durationUs: UInt64
    }

    /// One unit that was active when the update began.
    public struct Service: Codable, Sendable, Equatable {
        public var unit: String
        /// Down (its last process gone); the stop began at 0 for every unit.
        public var stoppedUs: UInt64?
        /// Started again after the restore.
        public var startedUs: UInt64?
        /// Ready again: its blackout is this value (from 0, the stop).
        public var readyUs: UInt64?
        /// It could not start, or failed before it was ready.
        public var failed: Bool
        /// Ready again after the update (`readyUs` is set).
        public var back: Bool
    }

    /// What came back for one unit.
    public struct Carried: Codable, Sendable, Equatable {
        public var unit: String
        public var fds: Int
        /// Service-owned LUO sessions, by name.
        public var sessions: [String]
    }

    public var schema = UpdateRecord.schemaVersion
    public var id: String
    public var outcome: Outcome
    public var rehearsal: Bool
    /// RFC 3339, UTC.
    public var startedAt: String
    public var startedAtUs: UInt64
    public var kernelBefore: String?
    public var kernelAfter: String?
    /// The kexec counter after this update.
    public var kexecCount: UInt32
    /// Why it was refused or rolled back.
    public var failure: String?
    public var phases: [Phase]
    /// From the stop to the first service ready; nil until known.
    public var blackoutUs: UInt64?
    public var services: [Service]
    public var carried: [Carried]
    /// Every fd (plain or session) that came back.
    public var carriedCount: Int
    /// fds the configuration asked to carry that did not come back (at most `listLimit` listed).
    public var lost: [LiveUpdateLoss]
    public var lostCount: Int
    /// Stores not meant to cross a kexec (FileDescriptorStorePreserve=no|restart).
    public var notCarried: [LiveUpdateLoss]
    /// Anything else the restore reported (at most `listLimit`).
    public var problems: [String]
    /// Every unit started after the update is ready or failed: nothing in this record changes now.
    public var settled: Bool

    /// How many entries each list keeps, so one record stays small whatever the host runs.
    public static let listLimit = 100

    public var servicesBack: Int { services.filter(\.back).count }
}
