/// Every live update's record, newest last, bounded; and the running totals behind the metrics'
/// counters (they must never go down, so they are kept apart from the bounded list).
///
/// Kept in the state folder (`history.json`) and, for hosts whose disk does not survive a kexec,
/// its newest records ride the mapping's `state.ferry` too; `merge` joins the two copies.
public struct UpdateHistory: Codable, Sendable, Equatable {
    public struct Totals: Codable, Sendable, Equatable {
        /// By outcome (`succeeded`, `rolled-back`, `refused`).
        public var updates: [String: UInt64] = [:]
        public var fdsCarried: UInt64 = 0
        /// By reason code.
        public var fdsLost: [String: UInt64] = [:]
        public init() {}
    }

    public var schema = UpdateRecord.schemaVersion
    /// Bumped by every change: of two copies, the one with the higher sequence has the newer totals.
    public var sequence: UInt64 = 0
    public var totals = Totals()
    /// Oldest first.
    public var updates: [UpdateRecord] = []

    /// How many records are kept.
    public static let recordLimit = 64

    public init() {}

    public var last: UpdateRecord? { updates.last }

    /// Adds a record, or replaces the one with its id (the open record of this boot's update,
    /// as its services become ready). Totals count a record once, when it is first added.
    public mutating func record(_ record: UpdateRecord) {
        sequence += 1
        if let index = updates.firstIndex(where: { $0.id == record.id }) {
            updates[index] = record
            return
        }
        updates.append(record)
        totals.updates[record.outcome.rawValue, default: 0] += 1
        totals.fdsCarried += UInt64(record.carriedCount)
        for loss in record.lost { totals.fdsLost[loss.reason.rawValue, default: 0] += UInt64(loss.count) }
        let unlisted = record.lostCount - record.lost.reduce(0) { $0 + $1.count }
        if unlisted > 0 { totals.fdsLost[LiveUpdateLoss.Reason.notRestored.rawValue, default: 0] += UInt64(unlisted) }
        trim(to: Self.recordLimit)
    }

    /// Keeps the newest `count` records.
    public mutating func trim(to count: Int) {
        if updates.count > count { updates.removeFirst(updates.count - count) }
    }

    /// Joins a copy kept elsewhere (the other of disk and mapping): records by id (a settled one
    /// wins over an open one), totals and sequence from whichever copy is newer.
    public mutating func merge(_ other: UpdateHistory) {
        if other.sequence > sequence {
            totals = other.totals
            sequence = other.sequence
        }
        for record in other.updates {
            if let index = updates.firstIndex(where: { $0.id == record.id }) {
                if !updates[index].settled && record.settled { updates[index] = record }
            } else {
                updates.append(record)
            }
        }
        updates.sort { $0.startedAtUs < $1.startedAtUs }
        trim(to: Self.recordLimit)
    }
}
