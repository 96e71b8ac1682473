import FerryJSON
import FerrySystem
import LiveUpdate

/// One session the broker made or carried for a client, and ferryd's reference to it.
///
/// An outgoing session is held by ferryd (`session`) for as long as the client has not released
/// it, so it rides the next kexec whether or not the client still runs. An incoming one (carried
/// from the previous kernel) is held until its owner retrieves it; then ferryd lets go of it and
/// keeps only the record, for `List` and `ferryctl status`.
final class BrokeredSession {
    enum State: String {
        /// Outgoing, held by ferryd, carried across the next kexec.
        case held
        /// Incoming, held by ferryd until its owner retrieves it.
        case waiting
        /// Incoming, handed to its owner, who now owns it.
        case retrieved
        /// Incoming, nobody retrieved it in time and the policy finished it (data discarded).
        case finished
    }

    let name: String
    let kernelName: String
    let owner: OwnerKey
    var state: State
    /// ferryd's own reference; nil once handed over or finished. Closing it drops an outgoing
    /// session that no client holds either, and finishes an incoming one.
    var session: LiveUpdateSession?
    /// Files and bytes preserved through the broker's Preserve (direct PRESERVE_FD is not seen).
    var files = 0
    var bytes: Int64 = 0
    var tokens: Set<UInt64> = []
    /// When it was created or arrived (monotonic µs).
    let since: UInt64
    /// An incoming session past the unclaimed deadline.
    var overdue = false

    init(name: String, kernelName: String, owner: OwnerKey, state: State, session: consuming LiveUpdateSession?,
         since: UInt64 = MonotonicClock.microseconds()) {
        self.name = name
        self.kernelName = kernelName
        self.owner = owner
        self.state = state
        self.session = session
        self.since = since
    }

    var isOutgoing: Bool { state == .held }

    /// What `List` and `ferryctl status --json` show.
    func described(now: UInt64) -> JSONValue {
        .object([
            "name": .string(name),
            "kernelName": .string(kernelName),
            "uid": .number(Double(owner.uid)),
            "owner": .string(owner.owner),
            "direction": .string(isOutgoing ? "outgoing" : "incoming"),
            "state": .string(state.rawValue),
            "files": .number(Double(files)),
            "bytes": .number(Double(bytes)),
            "ageSeconds": .number(Double((now &- since) / 1_000_000)),
            "overdue": .bool(overdue),
        ])
    }
}
