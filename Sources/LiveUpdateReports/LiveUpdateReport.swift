/// What a live update did: every fd carried or lost, by unit and name, and what failed.
public struct LiveUpdateReport: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var unit: String
        public var name: String
        /// fd, luo_session
        public var type: String
        public var token: UInt64?
        public var sessionName: String?

        public init(unit: String, name: String, type: String, token: UInt64? = nil, sessionName: String? = nil) {
            self.unit = unit
            self.name = name
            self.type = type
            self.token = token
            self.sessionName = sessionName
        }
    }

    public var sessionName: String
    public var rehearsal: Bool
    public var preserved: [Item] = []
    /// Entries that could not be carried, each with the reason (unit, fd name, errno).
    public var skipped: [String] = []
    /// Set when the update failed before the point of no return (everything was rolled back).
    public var failure: String?
    public var timings = LiveUpdateTimings()

    public init(sessionName: String, rehearsal: Bool) {
        self.sessionName = sessionName
        self.rehearsal = rehearsal
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

    public init() {}
}
