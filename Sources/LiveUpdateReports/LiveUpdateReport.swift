/// What a live update did: every fd carried or lost, by unit and name, and what failed.
public struct LiveUpdateReport: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var unit: String
        public var name: String
        /// fd, luo_session
        public var type: String
        public var token: UInt64?
        public var sessionName: String?
        /// X-FerryFDGroup=: the group it was preserved with (all-or-nothing, in order).
        public var group: String?

        public init(unit: String, name: String, type: String, token: UInt64? = nil, sessionName: String? = nil,
                    group: String? = nil) {
            self.unit = unit
            self.name = name
            self.type = type
            self.token = token
            self.sessionName = sessionName
            self.group = group
        }
    }

    /// When a unit went down during the stop phase, in µs from the phase's start.
    public struct ServiceStop: Codable, Sendable, Equatable {
        public var unit: String
        public var stoppedUs: UInt64
        public init(unit: String, stoppedUs: UInt64) {
            self.unit = unit
            self.stoppedUs = stoppedUs
        }
    }

    /// One unit's answer to the prepare barrier (X-FerryPrepare=yes).
    public struct BarrierReply: Codable, Sendable, Equatable {
        public var unit: String
        /// prepared, refused, timeout, exited, or unanswered (another unit ended the barrier first)
        public var outcome: String
        public var reason: String?
        /// µs from the moment the units were asked.
        public var afterUs: UInt64?
        public init(unit: String, outcome: String, reason: String?, afterUs: UInt64?) {
            self.unit = unit
            self.outcome = outcome
            self.reason = reason
            self.afterUs = afterUs
        }
    }

    public var sessionName: String
    public var rehearsal: Bool
    /// Each unit asked to prepare, and what it answered; nil when no unit opted in.
    public var barrier: [BarrierReply]?
    /// Names this update in the history (random, chosen when it began).
    public var id: String?
    /// When it began, µs since the Unix epoch (the realtime clock: a date, not a duration).
    public var startedAt: UInt64?
    /// uname's release of the kernel the update left.
    public var kernelBefore: String?
    /// Units that were active, each with the moment it was down.
    public var stops: [ServiceStop]?
    /// `skipped` again, each by unit, fd name and a reason code (metrics count them by reason).
    public var losses: [LiveUpdateLoss]?
    public var preserved: [Item] = []
    /// Entries that could not be carried, each with the reason (unit, fd name, errno).
    public var skipped: [String] = []
    /// The same, one entry per fd, with the reason in words.
    public var lost: [Lost] = []
    /// Set when the update failed before the point of no return (everything was rolled back).
    public var failure: String?
    public var timings = LiveUpdateTimings()

    public init(sessionName: String, rehearsal: Bool) {
        self.sessionName = sessionName
        self.rehearsal = rehearsal
    }

    /// One word for the whole update: `ok` (everything carried), `degraded` (carried, with
    /// losses), `failed` (rolled back, or refused: nothing changed hands).
    public var verdict: String {
        failure != nil ? "failed" : lost.isEmpty ? "ok" : "degraded"
    }

    enum CodingKeys: String, CodingKey {
        case sessionName, rehearsal, preserved, skipped, lost, failure, timings, verdict
        case id, startedAt, kernelBefore, stops, losses, barrier
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sessionName, forKey: .sessionName)
        try container.encode(rehearsal, forKey: .rehearsal)
        try container.encode(preserved, forKey: .preserved)
        try container.encode(skipped, forKey: .skipped)
        try container.encode(lost, forKey: .lost)
        try container.encodeIfPresent(failure, forKey: .failure)
        try container.encode(timings, forKey: .timings)
        try container.encode(verdict, forKey: .verdict)
        try container.encodeIfPresent(id, forKey: .id)
        try container.encodeIfPresent(startedAt, forKey: .startedAt)
        try container.encodeIfPresent(kernelBefore, forKey: .kernelBefore)
        try container.encodeIfPresent(stops, forKey: .stops)
        try container.encodeIfPresent(losses, forKey: .losses)
        try container.encodeIfPresent(barrier, forKey: .barrier)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sessionName = try container.decode(String.self, forKey: .sessionName)
        rehearsal = try container.decode(Bool.self, forKey: .rehearsal)
        preserved = try container.decodeIfPresent([Item].self, forKey: .preserved) ?? []
        skipped = try container.decodeIfPresent([String].self, forKey: .skipped) ?? []
        lost = try container.decodeIfPresent([Lost].self, forKey: .lost) ?? []
        failure = try container.decodeIfPresent(String.self, forKey: .failure)
        timings = try container.decodeIfPresent(LiveUpdateTimings.self, forKey: .timings) ?? LiveUpdateTimings()
        id = try container.decodeIfPresent(String.self, forKey: .id)
        startedAt = try container.decodeIfPresent(UInt64.self, forKey: .startedAt)
        kernelBefore = try container.decodeIfPresent(String.self, forKey: .kernelBefore)
        stops = try container.decodeIfPresent([ServiceStop].self, forKey: .stops)
        losses = try container.decodeIfPresent([LiveUpdateLoss].self, forKey: .losses)
        barrier = try container.decodeIfPresent([BarrierReply].self, forKey: .barrier)
    }

    /// Counts an fd (or a whole store) left behind by reason, next to `skipped` and `lost`
    /// (which say it in words).
    public mutating func lose(_ loss: LiveUpdateLoss) {
        losses = (losses ?? []) + [loss]
    }
}

/// One stored fd that does not (or would not) ride a live update, and why, in words.
public struct Lost: Codable, Sendable, Equatable {
    public var unit: String
    public var name: String
    /// memfd, socket, pipe, file, luo-session, ...
    public var type: String
    public var reason: String

    public init(unit: String, name: String, type: String, reason: String) {
        self.unit = unit
        self.name = name
        self.type = type
        self.reason = reason
    }
}

/// What the restore after boot found.
public struct RestoreReport: Codable, Sendable, Equatable {
    public var found = false
    public var restored: [LiveUpdateReport.Item] = []
    /// Everything that could not be restored, by unit and name.
    public var problems: [String] = []
    public var kexecCount: UInt32 = 0
    public var timings = LiveUpdateTimings()
    /// When the previous boot began its shutdown and reached the kexec (its monotonic µs).
    public var previousShutdown: [String: UInt64] = [:]
    public var startedUnits: [String] = []
    /// What the update before this boot could not carry (it was told before the kexec).
    public var lostBeforeKexec: [Lost]?
    /// What the previous ferryd reported of its side of the update (carried in the mapping).
    public var update: LiveUpdateReport?
    /// Each unit started after the restore: when it was started and when it was ready.
    public var services: [ServiceStart]?
    /// fds the previous kernel carried that could not be put back, by reason.
    public var losses: [LiveUpdateLoss]?

    /// One unit started after the restore, in µs from the moment the units were started.
    public struct ServiceStart: Codable, Sendable, Equatable {
        public var unit: String
        /// Seen activating (units start as jobs, in dependency order).
        public var startedUs: UInt64?
        public var readyUs: UInt64?
        /// It failed to start, or failed before it was ready.
        public var failed: Bool?
        public init(unit: String, startedUs: UInt64? = nil) {
            self.unit = unit
            self.startedUs = startedUs
        }
    }

    public init() {}

    public mutating func lose(_ loss: LiveUpdateLoss) {
        problems.append(loss.detail)
        losses = (losses ?? []) + [loss]
    }
}

/// What a live update would do now (`ferryctl kexec --dry-run`), without doing it: each stored
/// fd's fate, the memory the kernel would pin, the target kernel, and go or no-go.
public struct PreflightReport: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var unit: String
        public var name: String
        public var type: String
        public var survives: Bool
        /// Why not, in words; or how it rides (e.g. "kept open: a LUO session").
        public var reason: String?
        public var bytes: Int64?
        /// X-FerryFDGroup=: its group, with its place in the preservation order ("vm0 #2").
        public var group: String?

        public init(unit: String, name: String, type: String, survives: Bool, reason: String? = nil, bytes: Int64? = nil,
                    group: String? = nil) {
            self.unit = unit
            self.name = name
            self.type = type
            self.survives = survives
            self.reason = reason
            self.bytes = bytes
            self.group = group
        }
    }

    public var entries: [Entry] = []
    /// Bytes of memfds the kernel would keep across the kexec.
    public var pinnedBytes: Int64 = 0
    /// The target kernel: loaded or given, and what its command line needs.
    public var kernel = ""
    /// How the answer was found: "backend" (each fd tried in a scratch session) or "predicted".
    public var method = ""
    /// Every reason not to go.
    public var problems: [String] = []
    /// Units the barrier would ask to prepare first (X-FerryPrepare=yes), each with its signal and deadline.
    public var prepare: [String] = []

    public init() {}

    /// `go` (everything survives), `go-with-losses`, or `no-go` (a problem above).
    public var verdict: String {
        !problems.isEmpty ? "no-go" : entries.allSatisfy(\.survives) ? "go" : "go-with-losses"
    }

    enum CodingKeys: String, CodingKey { case entries, pinnedBytes, kernel, method, problems, verdict, prepare }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(entries, forKey: .entries)
        try container.encode(pinnedBytes, forKey: .pinnedBytes)
        try container.encode(kernel, forKey: .kernel)
        try container.encode(method, forKey: .method)
        try container.encode(problems, forKey: .problems)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(prepare, forKey: .prepare)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        entries = try container.decodeIfPresent([Entry].self, forKey: .entries) ?? []
        pinnedBytes = try container.decodeIfPresent(Int64.self, forKey: .pinnedBytes) ?? 0
        kernel = try container.decodeIfPresent(String.self, forKey: .kernel) ?? ""
        method = try container.decodeIfPresent(String.self, forKey: .method) ?? ""
        problems = try container.decodeIfPresent([String].self, forKey: .problems) ?? []
        prepare = try container.decodeIfPresent([String].self, forKey: .prepare) ?? []
    }
}
