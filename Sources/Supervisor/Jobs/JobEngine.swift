import Logging

/// Runs transactions: each job starts or stops its unit once the jobs before it are done, and a
/// unit that fails to start fails the jobs that require it ("dependency"), as in systemd.
///
/// Confined to the event-loop thread; driven by unit state changes.
public final class JobEngine {
    let units: UnitRegistry
    let processes: ProcessLifecycle
    let logger: Logger
    private var graph: DependencyGraph { DependencyGraph(units: units) }

    private struct Pending {
        var job: Transaction.Job
        var waitingFor: Set<String>
        /// Set once the start or stop was asked of the unit.
        var issued = false
        /// Told whether the job succeeded (for whoever asked for it).
        var completion: ((Bool) -> Void)?
    }

    private var pending: [String: Pending] = [:]
    /// Start jobs that ended in failure, for the jobs that require them.
    private var failed: Set<String> = []

    init(units: UnitRegistry, processes: ProcessLifecycle, states: UnitStates, logger: Logger) {
        self.units = units
        self.processes = processes
        self.logger = logger
        states.observe { [unowned self] _ in pump() }
    }

    /// Whether any job is still to run.
    public var isIdle: Bool { pending.isEmpty }

    /// Starts `names` (services or targets) and what they pull in, in order; `completion` hears
    /// whether each named unit came up.
    public func start(_ names: [String], completion: ((String, Bool) -> Void)? = nil) {
        enqueue(Transaction.start(names, graph: graph, logger: logger), completion: completion)
    }

    /// Stops `names` and the units that require them, in reverse order.
    ///
    /// - Parameter keepingStores: a live update stops them: every store stays, whatever its
    ///   preserve mode, until the update carries it or rolls back.
    public func stop(_ names: [String], keepingStores: Bool = false, completion: ((String, Bool) -> Void)? = nil) {
        let transaction = Transaction.stop(names, graph: graph, logger: logger)
        if keepingStores {
            for unit in transaction.jobs.keys {
                if let name = UnitName(unit), let service = units.services[name] { service.holdStoreForLiveUpdate = true }
            }
        }
        enqueue(transaction, completion: completion)
    }

    /// The units `names` pull in, in the order they would start (for status and tests).
    public func startOrder(_ names: [String]) -> [String] {
        let transaction = Transaction.start(names, graph: graph, logger: logger)
        var done: Set<String> = []
        var order: [String] = []
        while done.count < transaction.jobs.count {
            let ready = transaction.jobs.keys.filter { !done.contains($0) && (transaction.predecessors[$0] ?? []).isSubset(of: done) }.sorted()
            guard !ready.isEmpty else { break }
            done.formUnion(ready)
            order += ready
        }
        return order
    }

    private func enqueue(_ transaction: Transaction, completion: ((String, Bool) -> Void)?) {
        for (unit, job) in transaction.jobs {
            var entry = Pending(job: job, waitingFor: transaction.predecessors[unit] ?? [])
            if job.anchor, let completion { entry.completion = { completion(unit, $0) } }
            // A job for a unit that already had one replaces it; whoever waited on the old one hears now.
            pending[unit]?.completion?(false)
            pending[unit] = entry
            if job.kind == .start { failed.remove(unit) }
        }
        pump()
    }

    private var pumping = false
    private var pumpAgain = false

    /// Issues every job whose predecessors are done; finishes jobs whose units have settled.
    /// Starting a unit changes states, which calls back here: that call only asks for another round.
    private func pump() {
        guard !pumping else {
            pumpAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        var progressed = true
        while progressed || pumpAgain {
            progressed = false
            pumpAgain = false
            for unit in pending.keys.sorted() {
                guard var entry = pending[unit] else { continue }
                if entry.issued {
                    if isSettled(entry.job) { finish(unit, entry); progressed = true }
                    continue
                }
                entry.waitingFor = entry.waitingFor.filter { pending[$0] != nil }
                pending[unit] = entry
                guard entry.waitingFor.isEmpty else { continue }
                issue(unit, &entry)
                pending[unit] = entry
                progressed = true
            }
        }
    }

    private func issue(_ unit: String, _ entry: inout Pending) {
        entry.issued = true
        guard let name = UnitName(unit) else { return }  // a target: reached once its predecessors are
        guard let service = units.existingService(name) else {
            if entry.job.kind == .start && entry.job.required {
                logger.warning("\(unit) is required but has no unit file")
                failed.insert(unit)
            }
            return
        }
        switch entry.job.kind {
        case .start:
            if let missing = graph.requires(unit).first(where: { failed.contains($0) }) {
                logger.warning("Dependency failed for \(unit): \(missing) did not start")
                service.result = "dependency"
                failed.insert(unit)
                return
            }
            do throws(ManagerError) { try processes.start(service) } catch {
                logger.warning("\(unit): \(error.message)")
                failed.insert(unit)
            }
        case .stop:
            processes.stop(service, keepingStore: service.holdStoreForLiveUpdate)
        }
    }

    private func isSettled(_ job: Transaction.Job) -> Bool {
        guard let name = UnitName(job.unit), let service = units.services[name] else { return true }
        switch job.kind {
        case .start: return !service.state.isTransient || service.state.sub == .autoRestart
        case .stop: return service.mainPID == nil && service.controlPID == nil && service.state.active != .deactivating
        }
    }

    private func finish(_ unit: String, _ entry: Pending) {
        pending[unit] = nil
        if entry.job.kind == .start, let name = UnitName(unit), let service = units.services[name],
            service.state.active == .failed || service.state.sub == .autoRestart
        {
            failed.insert(unit)
        }
        entry.completion?(entry.job.kind == .stop || !failed.contains(unit))
    }
}
