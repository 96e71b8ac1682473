import Logging

/// The jobs one request makes (systemd's transaction): the units it pulls in through Requires=
/// and Wants=, the ones it stops through Conflicts=, and the order between them from After= and
/// Before=. Ordering cycles are broken as systemd breaks them: a job that was only wanted is
/// deleted (a required one only when nothing else is left), and the cycle is logged by name.
struct Transaction {
    enum Kind: String { case start, stop }

    struct Job {
        var unit: String
        var kind: Kind
        /// Asked for by name, or needed through a chain of Requires= from one that was.
        var required: Bool
        var anchor: Bool
    }

    private(set) var jobs: [String: Job] = [:]
    /// Every job's predecessors (jobs that must finish first).
    private(set) var predecessors: [String: Set<String>] = [:]

    /// A start of `anchors` and everything they pull in.
    static func start(_ anchors: [String], graph: DependencyGraph, logger: Logger) -> Transaction {
        var transaction = Transaction()
        var queue = anchors.map { Job(unit: $0, kind: .start, required: true, anchor: true) }
        while !queue.isEmpty {
            let job = queue.removeFirst()
            if let existing = transaction.jobs[job.unit], existing.required || !job.required { continue }
            transaction.jobs[job.unit] = job
            queue += graph.requires(job.unit).map { Job(unit: $0, kind: .start, required: job.required, anchor: false) }
            queue += graph.wants(job.unit).map { Job(unit: $0, kind: .start, required: false, anchor: false) }
        }
        for job in transaction.jobs.values {
            for other in graph.conflicts(job.unit) where transaction.jobs[other] == nil {
                transaction.jobs[other] = Job(unit: other, kind: .stop, required: false, anchor: false)
            }
        }
        transaction.order(graph: graph, logger: logger)
        return transaction
    }

    /// A stop of `anchors` and of every unit that requires one of them.
    static func stop(_ anchors: [String], graph: DependencyGraph, logger: Logger) -> Transaction {
        var transaction = Transaction()
        var queue = anchors
        while !queue.isEmpty {
            let unit = queue.removeFirst()
            guard transaction.jobs[unit] == nil else { continue }
            transaction.jobs[unit] = Job(unit: unit, kind: .stop, required: true, anchor: anchors.contains(unit))
            queue += graph.requiredBy(unit)
        }
        transaction.order(graph: graph, logger: logger)
        return transaction
    }

    /// Predecessors from After=/Before=: a start waits for the units it is after; a stop waits
    /// for the units that are after it (they go down first); stops go before starts.
    private mutating func order(graph: DependencyGraph, logger: Logger) {
        predecessors = [:]
        for (unit, job) in jobs {
            var before: Set<String> = []
            for (other, otherJob) in jobs where other != unit {
                switch (job.kind, otherJob.kind) {
                case (.start, .start): if graph.isOrdered(other, before: unit) { before.insert(other) }
                case (.stop, .stop): if graph.isOrdered(unit, before: other) { before.insert(other) }
                case (.start, .stop): before.insert(other)
                case (.stop, .start): break
                }
            }
            predecessors[unit] = before
        }
        while let cycle = findCycle() { breakCycle(cycle, logger: logger) }
    }

    private func findCycle() -> [String]? {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        func visit(_ unit: String) -> [String]? {
            state[unit] = 1
            path.append(unit)
            for next in (predecessors[unit] ?? []).sorted() {
                if state[next] == 1, let start = path.firstIndex(of: next) { return Array(path[start...]) + [next] }
                if state[next] == nil, let cycle = visit(next) { return cycle }
            }
            path.removeLast()
            state[unit] = 2
            return nil
        }
        for unit in jobs.keys.sorted() where state[unit] == nil {
            if let cycle = visit(unit) { return cycle }
        }
        return nil
    }

    private mutating func breakCycle(_ cycle: [String], logger: Logger) {
        let members = Array(cycle.dropLast())
        let text = cycle.reversed().map { "\($0)/\(jobs[$0]?.kind.rawValue ?? "?")" }.joined(separator: " → ")
        logger.warning("found an ordering cycle: \(text)")
        let victim = members.first { jobs[$0]?.anchor == false && jobs[$0]?.required == false }
            ?? members.first { jobs[$0]?.anchor == false }
        if let victim, let job = jobs[victim] {
            logger.warning("deleted job \(victim)/\(job.kind.rawValue) to break the ordering cycle starting with \(members[0])")
            jobs[victim] = nil
            predecessors[victim] = nil
            for key in predecessors.keys { predecessors[key]?.remove(victim) }
        } else {
            // Only anchors: drop one ordering edge instead; the units start side by side.
            logger.warning("dropped the ordering of \(members[1 % members.count]) after \(members[0]) to break the ordering cycle")
            predecessors[members[0]]?.remove(members[1 % members.count])
        }
    }
}
