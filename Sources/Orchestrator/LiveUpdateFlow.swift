import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One live update, start to finish, as a small state machine whose phases read top to bottom:
///
///     load kernel → barrier → stop → serialize → preserve → hand over (kexec, or a rehearsal)
///                                              ↘ hand over to the manager above (it preserves)
///                     ↘ (a refusal, a timeout, or any failure after the stop) roll back
///
/// It runs on the event loop and never nests it: each wait (units answering the barrier, units
/// stopping) returns to the loop and resumes on an answer or a state change, or at a deadline.
public final class LiveUpdateFlow {
    public enum Phase: String, Sendable {
        case loadKernel = "load-kernel"
        case barrier
        case stop
        case serialize
        case preserve
        case handOver = "hand-over"
        case rollBack = "roll-back"
    }

    public private(set) var phase = Phase.loadKernel
    let request: KexecRequest
    private unowned let orchestrator: LiveUpdateOrchestrator
    private let outcome: (LiveUpdateOutcome) -> Void
    private var report: LiveUpdateReport
    /// Units that were active before the stop: started again by a rollback, or after the boot.
    private var activeUnits: [UnitName] = []
    private let shutdownStart = MonotonicClock.microseconds()
    private var phaseStart = MonotonicClock.microseconds()
    private var stopDeadline: TimerFD?
    /// The units asked to prepare, while the barrier phase waits for their answers.
    private var barrier: PrepareBarrier?
    /// Ferry's session, held through systemd's shutdown until the kernel switches.
    private var held: PreparedSession?
    private var shutdownCheck: TimerFD?
    /// How long units may take to stop before the update goes on without waiting further.
    static let stopDeadlineDuration = Duration.seconds(120)

    private var manager: Manager { orchestrator.manager }
    private var logger: Logger { orchestrator.logger }

    init(request: KexecRequest, orchestrator: LiveUpdateOrchestrator, outcome: @escaping (LiveUpdateOutcome) -> Void) {
        self.request = request
        self.orchestrator = orchestrator
        self.outcome = outcome
        report = LiveUpdateReport(sessionName: orchestrator.sessionName, rehearsal: request.rehearse)
        report.id = String(UInt64.random(in: 1...UInt64.max), radix: 16)
        report.startedAt = WallClock.microseconds()
        report.kernelBefore = KernelRelease.current()
        report.stops = []
    }

    // MARK: 1. Load the kernel (or check the emulator): nothing has changed yet

    func start() {
        phase = .loadKernel
        if let above = orchestrator.managerAbove {
            guard above.kexecCommand != nil || request.handedOver else {
                return refuse("ferryd is nested under \(above.name), which holds every preserved store and carries it across a kexec; run the live update there (ferryctl kexec on the outer ferryd)")
            }
            // The manager above preserves and performs the kexec; a kernel given here is loaded for it.
            if request.kernel != nil, let failure = KernelLoading.prepare(request, logger: logger) { return refuse(failure) }
            return askUnitsToPrepare()
        }
        if request.rehearse && emulatorSocket == nil {
            return refuse("a rehearsal needs the LUO emulator (set \(EmulatorWire.environmentVariable))")
        }
        if !request.rehearse, let emulator = emulatorSocket {
            // The stores would go into a userspace process that dies with this kernel.
            return refuse("ferryd's LUO backend is the emulator at \(emulator): a real kexec would lose every store; rehearse instead (ferryctl kexec --rehearse)")
        }
        // From here until the update is done, a keeper holds a copy of every store (and later of
        // every session): ferryd dying at any step loses nothing (KeeperProcess).
        do throws(KeeperLink.Failure) {
            try orchestrator.startKeeper(activeUnits: currentlyActive())
        } catch {
            return refuse("\(error)")
        }
        if !request.rehearse, let failure = KernelLoading.prepare(request, logger: logger) {
            return refuse(failure)
        }
        TestFault.reached("load")
        askUnitsToPrepare()
    }

    // MARK: 2. Barrier: units that opted in prepare while they still run, or refuse

    /// Asks every running unit with X-FerryPrepare=yes (PrepareBarrier) and returns to the loop;
    /// the flow resumes in `barrierSettled` once all are prepared, one refused, or one is late.
    private func askUnitsToPrepare() {
        phase = .barrier
        let barrier = PrepareBarrier(manager: manager, logger: logger) { [unowned self] failure in barrierSettled(failure) }
        self.barrier = barrier
        if !barrier.ask() && phase == .barrier {
            self.barrier = nil
            stopUnits()
        }
    }

    /// A unit's X_FERRY_PREPARED=1 or X_FERRY_REFUSED= (from the notify socket).
    func prepareAnswer(_ answer: PrepareAnswer, from service: Service) {
        guard phase == .barrier, let barrier else {
            return logger.debug("\(service.name): prepare answer outside the barrier phase, ignored")
        }
        barrier.answer(answer, from: service)
    }

    private func barrierSettled(_ failure: String?) {
        guard let barrier else { return }
        self.barrier = nil
        report.barrier = barrier.replies
        guard let failure else { return stopUnits() }
        if request.handedOver {
            // systemctl kexec is already under way: a refusal cannot stop it, and units started
            // again now would only be killed by the shutdown. Say so, and carry what can be carried.
            logger.warning("live update: \(failure); the kexec is already under way (systemd's), going on")
            return stopUnits()
        }
        // Nothing was stopped or preserved: the units asked carry on where they were.
        barrier.resumeAll()
        rollBack(failure)
    }

    // MARK: 3. Stop every unit, holding every store whatever its preserve mode

    private func stopUnits() {
        phase = .stop
        phaseStart = MonotonicClock.microseconds()
        activeUnits = currentlyActive()
        orchestrator.noteKeeperPhase(phase.rawValue, activeUnits: activeUnits)
        // In reverse dependency order, every store held whatever its preserve mode.
        manager.jobs.stop(manager.services.keys.map(\.full).sorted(), keepingStores: true)
        TestFault.reached("stop")
        armStopDeadline()
        unitChanged(nil)
    }

    private func currentlyActive() -> [UnitName] {
        manager.services.values.filter { [.active, .activating, .reloading].contains($0.state.active) }.map(\.name).sorted()
    }

    /// Every state change of a unit comes here while the update runs.
    func unitChanged(_ service: Service?) {
        if phase == .barrier, let service { return barrier?.unitChanged(service) ?? () }
        guard phase == .stop else { return }
        noteStoppedUnits()
        guard !manager.services.values.contains(where: { $0.mainPID != nil || $0.controlPID != nil }) else { return }
        unitsStopped()
    }

    /// When each unit that was active went down: the left end of its bar in the timeline.
    private func noteStoppedUnits() {
        let now = MonotonicClock.microseconds()
        var stops = report.stops ?? []
        for name in activeUnits where !stops.contains(where: { $0.unit == name.full }) {
            guard let service = manager.services[name], service.mainPID == nil, service.controlPID == nil else { continue }
            stops.append(.init(unit: name.full, stoppedUs: now - phaseStart))
        }
        report.stops = stops
    }

    private func armStopDeadline() {
        guard let timer = try? TimerFD() else {
            // Without a deadline the update would wait for ever on a unit that never stops.
            logger.error("live update: cannot arm the stop deadline (timerfd); not waiting for units past their own stop timeouts")
            return
        }
        timer.arm(after: Self.stopDeadlineDuration)
        let fd = timer.descriptor.rawValue
        stopDeadline = consume timer
        try? manager.loop.watch(fd, for: .readable) { [unowned self] _ in
            let running = manager.services.values.filter { $0.mainPID != nil }.map { "\($0.name)" }.sorted()
            logger.error("live update: \(running.joined(separator: ", ")) still running after \(Self.stopDeadlineDuration); going on")
            unitsStopped()
        }
    }

    private func unitsStopped() {
        if let fd = stopDeadline?.descriptor.rawValue { manager.loop.unwatch(fd) }
        stopDeadline = nil
        report.timings.stop = lap()
        logger.info("stopped every unit for the live update (\(activeUnits.count) were active)")
        TestFault.reached("stopped")
        serialize()
    }

    // MARK: 4. Serialize: which stored fds ride the update

    private func serialize() {
        phase = .serialize
        let collection = StoreCollection.collect(from: manager, ownSession: orchestrator.sessionName, backend: orchestrator.backend,
                                                 logger: logger)
        report.skipped += collection.skipped
        report.lost += collection.lost
        for loss in collection.losses { report.lose(loss) }
        // What units stored while stopping, less what serialize dropped; a dropped session named
        // like Ferry's must be closed in the keeper too before CREATE_SESSION.
        orchestrator.keeper?.holdStores(of: manager)
        orchestrator.keeper?.sync()
        orchestrator.noteKeeperPhase(phase.rawValue, activeUnits: activeUnits)
        TestFault.reached("serialize")
        report.timings.serialize = lap()
        if let above = orchestrator.managerAbove {
            // The manager above preserves what it holds, in its own order (groups are Ferry's).
            return handOver(collection.allEntries, to: above)
        }
        preserve(collection)
    }

    // MARK: 5. Preserve: Ferry's session, every fd, then each group (the mapping's place kept for last)

    private func preserve(_ collection: StoreCollection) {
        phase = .preserve
        orchestrator.noteKeeperPhase(phase.rawValue, activeUnits: activeUnits)
        var prepared: PreparedSession
        do throws(PreparedSession.Failure) {
            // Each session goes to the keeper as soon as it exists: a dead ferryd's partial
            // session stays open there until the restarted ferryd rolls back.
            prepared = try PreparedSession(backend: orchestrator.backend, name: orchestrator.sessionName,
                                           keep: { [orchestrator] fd, name in
                                               orchestrator.keeper?.hold(.session(name, role: "outgoing"), fd: fd.rawValue)
                                           },
                                           dropped: { [orchestrator] name in
                                               orchestrator.keeper?.forget(kind: .session, name: name)
                                               orchestrator.keeper?.sync()
                                           })
        } catch {
            return rollBack(error.text)
        }
        TestFault.reached("preserve-session")
        prepared.preserve(collection.entries, report: &report, logger: logger)
        // Each group after every ungrouped fd, in a session of its own (PreparedSession+Groups).
        for group in collection.groups { prepared.preserve(group, report: &report, logger: logger) }
        report.timings.preserve = lap()
        handOver(prepared)
    }

    // MARK: 6. Hand over: write the mapping last, announce, and leave this kernel

    private func handOver(_ prepared: consuming PreparedSession) {
        phase = .handOver
        if let violation = policyViolation() {
            _ = consume prepared
            return rollBack(violation)
        }
        let mappingStart = MonotonicClock.microseconds()
        let state = ferryState(inMapping: true)
        let stateBuilt = MonotonicClock.microseconds()
        let mappingBytes: Int
        do throws(PreparedSession.Failure) {
            mappingBytes = try prepared.writeMapping(kexecCount: manager.kexecCount, ferryState: state)
        } catch {
            return rollBack(error.text)
        }
        // The mapping is written after the timings it carries: its own cost is only logged.
        let mappingEnd = MonotonicClock.microseconds()
        let mappingTime = "\(Double(mappingEnd - mappingStart) / 1000) ms (its state built in \(Double(stateBuilt - mappingStart) / 1000) ms)"
        orchestrator.noteKeeperPhase(phase.rawValue, activeUnits: activeUnits)
        TestFault.reached("mapping")
        logger.info("preserved fd stores in LUO session '\(orchestrator.sessionName)': \(report.preserved.count) entr\(report.preserved.count == 1 ? "y" : "ies"), \(report.skipped.count) skipped; mapping of \(mappingBytes) bytes written in \(mappingTime); \(request.rehearse ? "simulating kexec" : "rebooting with kexec")")
        if !request.rehearse && orchestrator.ownHandOver == .systemdShutdown {
            return holdThroughShutdown(prepared)
        }
        TestFault.reached("handover")
        // A rehearsal announces itself, as this process is replaced; a real kexec does not, so
        // that whoever asked hears either nothing (the machine is gone) or the rollback.
        let failure = if request.rehearse, let emulator = emulatorSocket {
            HandOver.rehearsal(manager, emulator: emulator) { outcome(.handingOver(report)) }
        } else {
            HandOver.kexec(manager)
        }
        // Only a failed hand-over comes back: the session closes as `prepared` goes away.
        _ = consume prepared
        rollBack(failure)
    }

    // MARK: 6'. Under systemd < 261: systemd's shutdown performs the kexec; hold the sessions

    /// Asks systemd for the kexec (unless it is already under way) and holds Ferry's session
    /// until the kernel switches. If systemd comes back to running instead, the kexec did not
    /// happen: everything rolls back.
    private func holdThroughShutdown(_ prepared: consuming PreparedSession) {
        held = consume prepared
        guard !request.handedOver else {
            logger.info("holding LUO session '\(orchestrator.sessionName)' through systemd's shutdown")
            outcome(.handingOver(report))
            return watchShutdown()
        }
        let command = ["systemctl", "kexec", "--no-block"]
        do throws(SystemCallError) {
            try manager.processes.spawnHelper(command) { [self] exit, _ in
                guard exit.isSuccess else {
                    held = nil
                    return rollBack("\(command.joined(separator: " ")): \(exit)")
                }
                logger.info("systemd performs the kexec; holding LUO session '\(orchestrator.sessionName)' until the kernel switches")
                outcome(.handingOver(report))
                watchShutdown()
            }
        } catch {
            held = nil
            rollBack("\(command.joined(separator: " ")): \(error)")
        }
    }

    /// Every 10 s: is systemd still shutting down? Running again means the kexec was cancelled.
    private func watchShutdown() {
        guard let timer = try? TimerFD() else { return }
        timer.arm(after: .seconds(10))
        let fd = timer.descriptor.rawValue
        shutdownCheck = consume timer
        try? manager.loop.watch(fd, for: .readable) { [unowned self] _ in
            manager.loop.unwatch(fd)
            shutdownCheck = nil
            try? manager.processes.spawnHelper(["systemctl", "is-system-running"]) { [self] _, output in
                let state = output.split(whereSeparator: { $0.isWhitespace }).first.map(String.init) ?? ""
                if ["running", "degraded", "starting", "initializing", "maintenance"].contains(state) {
                    held = nil
                    return rollBack("the kexec did not happen: systemd is \(state) again")
                }
                watchShutdown()
            }
        }
    }

    // MARK: 5'. Hand over to the manager above, which holds a copy of every store and preserves it

    private func handOver(_ entries: [StoreCollection.Entry], to above: LiveUpdateOrchestrator.ManagerAbove) {
        phase = .handOver
        for entry in entries {
            if entry.heldAbove {
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: entry.sessionName == nil ? "fd" : "luo_session",
                                              sessionName: entry.sessionName))
            } else {
                report.skipped.append("unit \(entry.unit) fd '\(entry.name)': \(above.name) holds no copy of it, will be lost across kexec")
                report.lost.append(Lost(unit: entry.unit.full, name: entry.name, type: LossReasons.kind(of: FileDescriptor(rawValue: entry.fd)),
                                        reason: "\(above.name) holds no copy of it (its store is full, or the push failed)"))
                report.lose(.init(unit: entry.unit.full, name: entry.name, reason: .notHeldAbove,
                                  detail: "unit \(entry.unit) fd '\(entry.name)': \(above.name) holds no copy of it, will be lost across kexec"))
            }
        }
        report.timings.preserve = lap()
        if let violation = policyViolation() { return rollBack(violation) }
        guard let upstream = manager.stores.upstream, let command = above.kexecCommand ?? (request.handedOver ? [] : nil) else {
            return rollBack("no store of \(above.name) to hand the update to")
        }
        for problem in orchestrator.pushSessionsAbove?(upstream) ?? [] {
            logger.warning("\(problem)")
            report.skipped.append(problem)
        }
        var state = ferryState()
        state["shutdownFinish"] = .number(Double(MonotonicClock.microseconds()))
        state["kexecCount"] = .number(Double(manager.kexecCount))
        do throws(SystemCallError) {
            try upstream.pushUpdateState(Array(JSONValue.object(state).encodedString().utf8))
        } catch {
            return rollBack("the live update's state could not be handed to \(above.name): \(error)")
        }
        guard !request.handedOver else {
            // The kexec is already under way: the manager above stops ferryd next.
            logger.info("the live update is \(above.name)'s: \(report.preserved.count) entr\(report.preserved.count == 1 ? "y" : "ies") held there, \(report.skipped.count) skipped")
            return outcome(.handingOver(report))
        }
        logger.info("handing the live update to \(above.name) (\(report.preserved.count) entr\(report.preserved.count == 1 ? "y" : "ies") held there, \(report.skipped.count) skipped): \(command.joined(separator: " "))")
        do throws(SystemCallError) {
            try manager.processes.spawnHelper(command) { [self] exit, _ in
                guard exit.isSuccess else {
                    upstream.dropUpdateState()
                    return rollBack("\(command.joined(separator: " ")): \(exit)")
                }
                // Asked: the manager above now stops ferryd and performs the kexec.
                outcome(.handingOver(report))
            }
        } catch {
            upstream.dropUpdateState()
            rollBack("\(command.joined(separator: " ")): \(error)")
        }
    }

    // MARK: Policy: what may not be lost

    /// Why the update must not go on: a loss in a unit with X-FerryRequired=yes, or any loss
    /// with --require-all. Checked before the point of no return, so the rollback undoes it.
    private func policyViolation() -> String? {
        let required = report.lost.filter { lost in
            request.requireAll || UnitName(lost.unit).flatMap { manager.services[$0]?.config.ferryRequired } == true
        }
        guard let first = required.first else { return nil }
        let why = request.requireAll ? "--require-all" : "\(first.unit) has X-FerryRequired=yes"
        return "\(why): \(required.count) stored fd(s) would be lost, first \(first.unit) fd '\(first.name)': \(first.reason)"
    }

    // MARK: Failure before the point of no return

    /// Nothing was changed: say why and end.
    private func refuse(_ reason: String) {
        report.failure = reason
        logger.error("live update refused: \(reason)")
        outcome(.refused(report))
        orchestrator.releaseKeeperWhenSettled()
    }

    /// Units were stopped: start the ones that ran again, with their stores (which the stop held).
    private func rollBack(_ reason: String) {
        phase = .rollBack
        report.failure = reason
        // The partial session closes now (the keeper's copy too); the stores stay with the keeper
        // until every unit has started again with them.
        orchestrator.keeper?.forget(role: "outgoing")
        orchestrator.keeper?.sync()
        orchestrator.noteKeeperPhase(phase.rawValue, activeUnits: activeUnits)
        logger.error("live update failed, rolling back: \(reason)")
        if let upstream = manager.stores.upstream { orchestrator.sessionsAboveDropped?(upstream) }
        for service in manager.services.values { manager.processes.releaseLiveUpdateHold(service) }
        manager.jobs.start(activeUnits.map(\.full)) { [logger] unit, succeeded in
            if !succeeded { logger.error("rollback: \(unit) could not start again") }
        }
        logger.info("rolled back: \(activeUnits.count) unit(s) started again with their stores")
        outcome(.rolledBack(report))
        orchestrator.releaseKeeperWhenSettled()
    }

    // MARK: Helpers

    /// What the next ferryd needs of this one: which units to start, and the timings so far.
    ///
    /// - Parameter inMapping: the state rides Ferry's own mapping, whose entries already say what
    ///   was preserved: the report leaves out those items (one per fd, thousands of them, encoded
    ///   and parsed twice otherwise) and the next ferryd takes them from the mapping. Items of a
    ///   group stay, with their group's name.
    private func ferryState(inMapping: Bool = false) -> [String: JSONValue] {
        var carried = report
        if inMapping { carried.preserved = report.preserved.filter { $0.group != nil } }
        var state: [String: JSONValue] = [
            "activeUnits": .array(activeUnits.map { .string($0.full) }),
            "bootID": .string(LiveUpdateOrchestrator.bootID()),
            "shutdownStart": .number(Double(shutdownStart)),
            "timings": JSONValue.from(report.timings),
            "lost": JSONValue.from(report.lost),
            // The old side of the update's record, and the history to carry when the disk does not.
            "report": JSONValue.from(carried),
            "history": orchestrator.carriedAlong?() ?? .null,
            "broker": orchestrator.carriedSessions?() ?? .null,
        ]
        if inMapping { state["preservedInMapping"] = .bool(true) }
        return state
    }

    private var emulatorSocket: String? { (orchestrator.backend as? EmulatorBackend)?.socketPath }

    /// Microseconds since the current phase began; starts the next.
    private func lap() -> UInt64 {
        let now = MonotonicClock.microseconds()
        defer { phaseStart = now }
        return now - phaseStart
    }
}

extension LiveUpdateOrchestrator {
    /// /proc/sys/kernel/random/boot_id: tells a rehearsal (same boot) from a real kexec.
    public static func bootID() -> String {
        var text = Substring(FileIO.text(ofFile: "/proc/sys/kernel/random/boot_id", limit: 128) ?? "")
        while let last = text.last, last == "\n" || last == " " { text.removeLast() }
        return String(text)
    }
}
