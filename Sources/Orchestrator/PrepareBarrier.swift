import FerrySystem
import LiveUpdateReports
import Logging
import Supervisor

/// The barrier phase: every running unit with `X-FerryPrepare=yes` is asked to prepare for the
/// live update (its prepare signal) while it still runs, so it can flush and quiesce; each must
/// answer `X_FERRY_PREPARED=1` or `X_FERRY_REFUSED=REASON` on `$NOTIFY_SOCKET` before its deadline.
///
/// It runs before the stop on purpose: a refusal then costs nothing but a resume signal, as no
/// unit was stopped and no fd preserved (docs/prepare-barrier.md). It never blocks: answers come
/// through the notify socket's handler, exits through state changes, deadlines through a timer.
final class PrepareBarrier {
    private unowned let manager: Manager
    private let logger: Logger
    /// Called once: nil when every unit asked is prepared, else why the update must stop.
    private let settled: (String?) -> Void
    private let started = MonotonicClock.microseconds()
    /// Units asked and not yet answered, with their deadlines (monotonic µs).
    private var pending: [UnitName: UInt64] = [:]
    /// Every unit asked, in the order asked (told to resume if the update is abandoned).
    private var asked: [Service] = []
    private(set) var replies: [LiveUpdateReport.BarrierReply] = []
    private var deadline: TimerFD?
    private var done = false

    init(manager: Manager, logger: Logger, settled: @escaping (String?) -> Void) {
        self.manager = manager
        self.logger = logger
        self.settled = settled
    }

    /// The units that would be asked now: opted in, and running (a unit still starting may not
    /// have its signal handler yet, and a realtime signal's default action ends the process).
    static func candidates(in manager: Manager) -> [Service] {
        manager.services.values
            .filter { $0.config.prepareBarrier.enabled && $0.state.active == .active && $0.mainPID != nil }
            .sorted { $0.name < $1.name }
    }

    /// Signals every candidate; false when there is none (the phase then ends at once).
    func ask() -> Bool {
        let candidates = Self.candidates(in: manager)
        guard !candidates.isEmpty else { return false }
        for service in candidates {
            guard let pid = service.mainPID else { continue }
            let config = service.config.prepareBarrier
            pending[service.name] = started + Self.microseconds(config.timeout)
            asked.append(service)
            Processes.signal(pid, config.prepareSignal.number)
            logger.info("live update: asked \(service.name) (pid \(pid)) to prepare with \(config.prepareSignal); answer due within \(config.timeout)")
        }
        armDeadline()
        return true
    }

    /// An answer from a unit's notify message.
    func answer(_ answer: PrepareAnswer, from service: Service) {
        guard !done, pending[service.name] != nil else {
            logger.debug("\(service.name): prepare answer \(answer) while not asked, ignored")
            return
        }
        pending[service.name] = nil
        switch answer {
        case .prepared:
            record(service.name, "prepared")
            logger.info("live update: \(service.name) is prepared")
            if pending.isEmpty { finish(nil) }
        case .refused(let reason):
            record(service.name, "refused", reason)
            finish("unit \(service.name) refused to prepare for the live update: \(reason)")
        }
    }

    /// Any state change: a unit that stops running while asked cannot have prepared.
    func unitChanged(_ service: Service) {
        guard !done, pending[service.name] != nil, service.mainPID == nil else { return }
        pending[service.name] = nil
        record(service.name, "exited", "\(service.state)")
        finish("unit \(service.name) exited while preparing for the live update (\(service.state)); prepare signal \(service.config.prepareBarrier.prepareSignal) must be handled")
    }

    /// The update is abandoned: every unit asked that still runs gets its resume signal, whether
    /// it answered or not (resuming is harmless to one that never stopped its work).
    func resumeAll() {
        for service in asked {
            guard let pid = service.mainPID else { continue }
            Processes.signal(pid, service.config.prepareBarrier.resumeSignal.number)
            logger.info("live update abandoned: told \(service.name) (pid \(pid)) to resume with \(service.config.prepareBarrier.resumeSignal)")
        }
    }

    private func record(_ unit: UnitName, _ outcome: String, _ reason: String? = nil) {
        replies.append(.init(unit: unit.full, outcome: outcome, reason: reason,
                             afterUs: MonotonicClock.microseconds() - started))
    }

    private func finish(_ failure: String?) {
        guard !done else { return }
        done = true
        if let fd = deadline?.descriptor.rawValue { manager.loop.unwatch(fd) }
        deadline = nil
        // Whoever had not answered when another refused is named too.
        for (name, _) in pending.sorted(by: { $0.key < $1.key }) {
            replies.append(.init(unit: name.full, outcome: "unanswered", reason: nil, afterUs: nil))
        }
        pending = [:]
        settled(failure)
    }

    // MARK: Deadlines

    /// One timer, at the earliest deadline still pending; re-armed as it fires.
    private func armDeadline() {
        guard let earliest = pending.values.min() else { return }
        if deadline == nil {
            guard let timer = try? TimerFD() else {
                // Without a timer a silent unit would hold the update for ever: refuse instead.
                return finish("cannot arm the prepare deadline (timerfd); the live update does not wait without one")
            }
            let fd = timer.descriptor.rawValue
            deadline = consume timer
            do throws(SystemCallError) {
                try manager.loop.watch(fd, for: .readable) { [unowned self] _ in deadlinePassed() }
            } catch {
                return finish("cannot watch the prepare deadline: \(error)")
            }
        }
        let now = MonotonicClock.microseconds()
        deadline?.arm(after: .microseconds(Int64(earliest > now ? earliest - now : 1)))
    }

    private func deadlinePassed() {
        deadline?.acknowledge()
        let now = MonotonicClock.microseconds()
        guard let first = pending.filter({ $0.value <= now }).keys.sorted().first else { return armDeadline() }
        pending[first] = nil
        let timeout = manager.services[first]?.config.prepareBarrier.timeout ?? .zero
        record(first, "timeout", "no answer within \(timeout)")
        finish("unit \(first) did not answer the prepare request within \(timeout) (X-FerryPrepareTimeoutSec=)")
    }

    static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(seconds, 0)) * 1_000_000 + UInt64(max(attoseconds, 0) / 1_000_000_000_000)
    }
}
