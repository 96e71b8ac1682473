import FerryJSON
import FerrySystem
import LiveUpdateReports
import Logging
import Orchestrator
import Supervisor

/// Beside the orchestrator, never inside it: turns each live update's reports into a history
/// record, keeps the history (state folder, and carried in the mapping for hosts whose disk does
/// not survive a kexec), writes the metrics file after every update and state change, and logs
/// one summary line per update.
///
/// Confined to the event-loop thread, like the manager and the orchestrator it listens to.
public final class UpdateObserver {
    /// Read from disk when first needed, which is after a restore has started the units: under
    /// TCG, decoding it in a fresh process costs tens of milliseconds of the blackout.
    public private(set) lazy var history: UpdateHistory = store.load(logger: logger)
    public var metricsFile: String? { metrics.path }
    private let manager: Manager
    private let orchestrator: LiveUpdateOrchestrator
    private let store: HistoryStore
    private let metrics: MetricsTextfile
    private let logger: Logger
    /// The id of this boot's update when the previous ferryd carried none (an older version).
    private lazy var fallbackID = String(UInt64.random(in: 1...UInt64.max), radix: 16)
    /// The history the previous kernel carried has been joined to the one on disk.
    private var carriedMerged = false
    /// Sessions that came back in this boot's restore ("unit\0name").
    private var incoming: Set<String> = []
    private var refresh: TimerFD?
    /// A write is armed on `refresh` for shortly after a change.
    private var writePending = false
    /// How often the metrics are refreshed without a state change (stores change without one).
    static let refreshInterval = Duration.seconds(30)
    /// State changes come in bursts (a live update stops and starts every unit): one write for
    /// the burst, at most this long after its first change. Rendering and replacing the file
    /// costs milliseconds (docs/benchmarks.md), which must not land inside a blackout.
    static let coalesceInterval = Duration.seconds(1)

    public init(manager: Manager, orchestrator: LiveUpdateOrchestrator, stateDirectory: String, metricsFile: String?,
                logger: Logger) {
        self.manager = manager
        self.orchestrator = orchestrator
        self.logger = logger
        store = HistoryStore(folder: stateDirectory)
        metrics = MetricsTextfile(path: metricsFile, logger: logger)
        orchestrator.carriedAlong = { [unowned self] in HistoryStore.carried(history) }
        orchestrator.onOutcome = { [unowned self] outcome in ended(outcome) }
        orchestrator.onRestoreReport = { [unowned self] report in restored(report) }
        manager.observeStates { [unowned self] _ in scheduleMetrics() }
        armRefresh()
    }

    /// The metrics as they are now (the file's contents after the next write).
    public func renderMetrics() -> String {
        MetricsExposition.render(metrics.snapshot(manager, history: history, incoming: incoming))
    }

    public func writeMetrics() {
        metrics.write(renderMetrics())
    }

    // MARK: An update that ends in this process

    private func ended(_ outcome: LiveUpdateOutcome) {
        switch outcome {
        case .handingOver:
            // The next ferryd makes the record from what the mapping carries.
            return
        case .refused(let report):
            add(UpdateRecord(failed: report, rolledBack: false, kexecCount: manager.kexecCount, id: fallbackID))
        case .rolledBack(let report):
            add(UpdateRecord(failed: report, rolledBack: true, kexecCount: manager.kexecCount, id: fallbackID))
        }
    }

    // MARK: The update this boot came from

    /// The restore report is made, or a unit started after it became ready (or failed).
    private func restored(_ report: RestoreReport) {
        guard report.found else { return }
        joinCarriedHistory()
        incoming = Set(report.restored.filter { $0.sessionName != nil }.map { "\($0.unit)\u{0}\($0.name)" })
        add(UpdateRecord(restore: report, kernelAfter: KernelRelease.current(), id: fallbackID))
    }

    /// Once per boot: what the previous kernel carried joins what the disk kept (on a host whose
    /// disk did not survive, that is the whole history).
    private func joinCarriedHistory() {
        guard !carriedMerged else { return }
        carriedMerged = true
        guard let carried = orchestrator.carriedFromPreviousBoot?.decode(UpdateHistory.self) else { return }
        history.merge(carried)
    }

    // MARK: Keeping it

    private func add(_ record: UpdateRecord) {
        let before = history.updates.first { $0.id == record.id }
        guard before != record else { return }
        history.record(record)
        // On disk and in the metrics at once when it appears and when it settles; the readiness
        // of each unit in between would rewrite both once per unit.
        guard before == nil || before?.settled != record.settled else { return scheduleMetrics() }
        save()
        writeMetrics()
        if record.settled && before?.settled != true {
            let line = UpdateSummary.line(record)
            if UpdateSummary.isTrouble(record) { logger.warning("\(line)") } else { logger.notice("\(line)") }
        }
    }

    private func save() {
        do throws(SystemCallError) {
            try store.save(history)
        } catch {
            logger.warning("update history: cannot write \(store.path): \(error); it is kept in memory and carried across the next kexec")
        }
    }

    /// A write soon, once for a burst of changes.
    private func scheduleMetrics() {
        guard !writePending, refresh != nil else { return }
        writePending = true
        refresh?.arm(after: Self.coalesceInterval)
    }

    /// One timer for both: the coalesced write after changes, and the periodic refresh. While a
    /// live update runs nothing is written (its end writes at once).
    private func armRefresh() {
        guard let timer = try? TimerFD() else { return }
        timer.arm(after: Self.refreshInterval)
        let fd = timer.descriptor.rawValue
        refresh = consume timer
        try? manager.loop.watch(fd, for: .readable) { [unowned self] _ in
            refresh?.acknowledge()
            if orchestrator.phase != nil {
                refresh?.arm(after: Self.coalesceInterval)
                return
            }
            writePending = false
            refresh?.arm(after: Self.refreshInterval)
            writeMetrics()
        }
    }
}
