import FerryJSON
import FerrySystem
import LiveUpdate

/// After-boot accounting: an incoming session nobody retrieved within the policy's
/// `unclaimed-after` is reported (a warning naming session, kernel name and owner; `overdue` in
/// `List` and `ferryctl status`), and with `unclaimed-action finish` finished and let go, so the
/// memory the previous kernel pinned for it is freed now instead of at the next update.
extension SessionBroker {
    /// Marks (and, if the policy says so, finishes) every waiting session older than the
    /// deadline; returns what it reported.
    @discardableResult
    public func sweepUnclaimed(now: UInt64 = MonotonicClock.microseconds()) -> [String] {
        let deadline = UInt64(policy.unclaimedAfter.components.seconds) * 1_000_000
            + UInt64(policy.unclaimedAfter.components.attoseconds / 1_000_000_000_000)
        var reported: [String] = []
        for record in incoming.values.sorted(by: { $0.kernelName < $1.kernelName })
        where record.state == .waiting && !record.overdue && now &- record.since >= deadline {
            record.overdue = true
            var text = "broker: incoming session '\(record.name)' (kernel name '\(record.kernelName)') of \(record.owner) was not retrieved within \(policy.unclaimedAfter)"
            if policy.unclaimedAction == .finish {
                do throws(LiveUpdateError) {
                    try record.session?.finish()
                    text += "; finished and released (its preserved files are freed)"
                } catch {
                    text += "; FINISH failed (\(error)), released (closing finishes it)"
                }
                record.session = nil
                record.state = .finished
            } else {
                text += "; still held (unclaimed-action report)"
            }
            logger.warning("\(text)")
            reported.append(text)
        }
        return reported
    }

    /// The deadline's timer, armed once after the boot's sessions were adopted.
    public func armUnclaimedTimer(on loop: EventLoop) {
        guard incoming.values.contains(where: { $0.state == .waiting && !$0.overdue }) else { return }
        guard let timer = try? TimerFD() else {
            logger.error("broker: cannot arm the unclaimed-session timer (timerfd); unclaimed sessions are reported only by ferryctl status")
            return
        }
        // After a re-exec the oldest waiting session may be part-way to the deadline already.
        let oldest = incoming.values.filter { $0.state == .waiting && !$0.overdue }.map(\.since).min() ?? MonotonicClock.microseconds()
        let age = Duration.microseconds(Int64(MonotonicClock.microseconds() &- oldest))
        timer.arm(after: max(.milliseconds(1), policy.unclaimedAfter - age))
        let fd = timer.descriptor.rawValue
        unclaimedTimer = consume timer
        try? loop.watch(fd, for: .readable) { [unowned self] _ in
            loop.unwatch(fd)
            unclaimedTimer = nil
            sweepUnclaimed()
            armUnclaimedTimer(on: loop)
        }
    }

    /// What `ferryctl status` shows (and its JSON): counts, overdue sessions, retrieval problems.
    public func statusReport() -> JSONValue {
        let counts = summary
        return .object([
            "policy": .string(policy.source),
            "held": .number(Double(counts.held)),
            "waiting": .number(Double(counts.waiting)),
            "overdue": .number(Double(counts.overdue)),
            "unclaimedAfterSeconds": .number(Double(policy.unclaimedAfter.components.seconds)),
            "unclaimedAction": .string(policy.unclaimedAction.rawValue),
            "sessions": .array(list(for: nil)),
            "problems": .array(lostAfterBoot.map { .string($0) }),
        ])
    }
}
