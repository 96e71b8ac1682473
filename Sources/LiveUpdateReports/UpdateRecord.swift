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

/// Every key is always written, null when unknown: scripts (jq, Ansible) can read any field of
/// any record without first asking whether it is there. Decoding stays synthesized (it reads
/// null and absent alike).
extension UpdateRecord {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schema, forKey: .schema)
        try container.encode(id, forKey: .id)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(rehearsal, forKey: .rehearsal)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(startedAtUs, forKey: .startedAtUs)
        try container.encode(kernelBefore, forKey: .kernelBefore)
        try container.encode(kernelAfter, forKey: .kernelAfter)
        try container.encode(kexecCount, forKey: .kexecCount)
        try container.encode(failure, forKey: .failure)
        try container.encode(phases, forKey: .phases)
        try container.encode(blackoutUs, forKey: .blackoutUs)
        try container.encode(services, forKey: .services)
        try container.encode(carried, forKey: .carried)
        try container.encode(carriedCount, forKey: .carriedCount)
        try container.encode(lost, forKey: .lost)
        try container.encode(lostCount, forKey: .lostCount)
        try container.encode(notCarried, forKey: .notCarried)
        try container.encode(problems, forKey: .problems)
        try container.encode(settled, forKey: .settled)
    }
}

extension UpdateRecord.Service {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(unit, forKey: .unit)
        try container.encode(stoppedUs, forKey: .stoppedUs)
        try container.encode(startedUs, forKey: .startedUs)
        try container.encode(readyUs, forKey: .readyUs)
        try container.encode(failed, forKey: .failed)
        try container.encode(back, forKey: .back)
    }
}
