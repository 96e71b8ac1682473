import LiveUpdate

/// The emulated kernel's state, as the emulator's `status` request returns it.
public struct EmulatorStatus: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public var token: UInt64
        public var size: Int64
    }
    public struct Session: Codable, Sendable, Equatable {
        public var name: String
        public var direction: String
        public var files: [File]
        public var finished: Bool
        public var retrieved: Bool
    }
    public var profile: String
    public var liveUpdateNumber: Int
    public var deviceInUse: Bool
    public var sessions: [Session]
    /// The call log, oldest first (bounded; see EmulatorCallLog).
    public var calls: [EmulatorCall]?
}

extension EmulatedKernel {
    public var status: EmulatorStatus {
        let all = (outgoing.values.sorted { $0.serial < $1.serial } + incoming.values.sorted { $0.serial < $1.serial })
        return EmulatorStatus(
            profile: profile.level.rawValue, liveUpdateNumber: liveUpdateNumber, deviceInUse: deviceInUse,
            sessions: all.map { session in
                EmulatorStatus.Session(
                    name: session.displayName, direction: session.direction.rawValue,
                    files: session.entries.map { .init(token: $0.token, size: $0.frozenSize) },
                    finished: session.finished, retrieved: session.handedOut)
            }, calls: callLog.calls)
    }
}
