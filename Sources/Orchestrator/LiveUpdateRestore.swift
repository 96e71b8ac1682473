import FDStore
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor
import SystemPackage

extension LiveUpdateOrchestrator {
    /// On a fresh boot (never after a re-exec): takes Ferry's session back, puts every fd into its
    /// unit's store (placeholders for units without a file), finishes Ferry's session (never a
    /// service's), bumps the kexec counter, then starts the units that ran before the update.
    ///
    /// Nothing here is fatal: what cannot be restored is reported by unit and name.
    @discardableResult
    public func restoreAfterBoot(startUnits: Bool = true) -> RestoreReport {
        var report = RestoreReport()
        let started = MonotonicClock.microseconds()
        defer { lastRestoreStorage = report }
        let device: LiveUpdateDevice
        do throws(LiveUpdateError) {
            device = try LiveUpdateDevice.open(backend)
        } catch {
            if case .unavailable = error.kind, !(backend is EmulatorBackend) {
                logger.debug("no /dev/liveupdate, skipping LUO fd store restoration: \(error)")
            } else {
                logger.warning("cannot open /dev/liveupdate, nothing restored: \(error)")
                report.problems.append("\(error)")
            }
            return report
        }
        // A keeper holds each retrieved session from the moment it is retrieved until every unit
        // has its fds: a retrieved session that closes is gone.
        startKeeperForRestore()
        let session: LiveUpdateSession
        do throws(LiveUpdateError) {
            session = try incomingSession(.session(sessionName, role: "incoming"), device: device)
        } catch {
            if !isResuming {
                keeper?.release()
                keeper = nil
            }
            if error.errno == .noSuchFileOrDirectory {
                logger.debug("no LUO session '\(sessionName)', skipping fd store restoration")
            } else {
                logger.warning("cannot retrieve LUO session '\(sessionName)': \(error)")
                report.problems.append("\(error)")
            }
            return report
        }
        report.found = true
        defer { releaseKeeperWhenSettled() }
        // What the keeper held of the update before the kexec is stale now.
        keeper?.forget(kind: .store)
        keeper?.forget(role: "outgoing")
        noteKeeperPhase("restore", activeUnits: [])
        TestFault.reached("retrieve-session")
        logger.info("found LUO session '\(sessionName)', restoring fd stores (\(ProcessAge.millisecondsSinceMain()) ms after ferryd's main began)")
        // Each part of the restore is timed and logged: the VM benchmark compares it with the
        // bare loop of the same calls.
        let sessionTaken = MonotonicClock.microseconds()
        var fetched = (bytes: 0, at: sessionTaken)
        guard let mapping = readMapping(session, report: &report, fetched: &fetched) else {
            finish(session)
            dropSessionsHeldAbove()
            return report
        }
        let mappingRead = MonotonicClock.microseconds()
        report.kexecCount = mapping.kexecsCount &+ 1
        manager.kexecCount = report.kexecCount
        let shards = Shards(names: (mapping.state["ferry"]?["shards"]?.array ?? []).compactMap(\.string))
        let groups = RestoredGroup.read(mapping, sessionName: sessionName, problems: &report.problems)
        // A group's entries wait for restoreGroups, which takes them in reverse.
        let groupSessions = Set(groups.map(\.session))
        for (unit, entries) in mapping.units {
            guard let name = UnitName(unit) else { continue }
            let service = manager.units.service(name)
            for entry in entries {
                if case .fd(_, _, let shard?) = entry, groupSessions.contains(shard) { continue }
                restore(entry, unit: name, service: service, session: session, shards: shards, device: device, report: &report)
            }
        }
        restoreGroups(groups, shards: shards, device: device, report: &report)
        let entriesDone = MonotonicClock.microseconds()
        let ferry = mapping.state["ferry"]?.object ?? [:]
        let activeUnits = (ferry["activeUnits"]?.array ?? []).compactMap { $0.string.flatMap(UnitName.init) }
        // FINISH discards what was not retrieved: from here the keeper's copies of the stores are the truth.
        keeper?.holdStores(of: manager)
        noteKeeperPhase("restored", activeUnits: activeUnits, kexecCount: report.kexecCount)
        pushStoresAboveBeforeFinish()
        TestFault.reached("finish")
        finishShards(shards, device: device, report: &report)
        finish(session)
        dropSessionsHeldAbove()
        TestFault.reached("finished")
        _ = consume device
        let finished = MonotonicClock.microseconds()
        let restoreTime = finished - started
        // The units first: what the old side reported and timed is for people and history, and
        // decoding it (a fresh process, under TCG tens of ms) must not hold the units' start.
        if startUnits { startRestored(activeUnits, report: &report) }
        let unitsStarted = MonotonicClock.microseconds()
        adoptCarried(ferry, into: &report)
        if ferry["preservedInMapping"]?.bool == true, let carried = report.update?.preserved {
            report.update?.preserved = Self.preservedItems(in: mapping, besides: carried)
        }
        let ready = report.timings.ready
        adoptTimings(ferry, into: &report, restoreStarted: started)
        report.timings.ready = ready
        report.timings.restore = restoreTime
        func ms(_ from: UInt64, _ to: UInt64) -> String { "\(Double(to - from) / 1000)" }
        logger.info("restore: session \(ms(started, sessionTaken)) ms, mapping (\(fetched.bytes) bytes) read \(ms(sessionTaken, fetched.at)) ms and parsed \(ms(fetched.at, mappingRead)) ms, \(report.restored.count) entries \(ms(mappingRead, entriesDone)) ms, finish \(ms(entriesDone, finished)) ms; then units started \(ms(finished, unitsStarted)) ms, carried report and timings \(ms(unitsStarted, MonotonicClock.microseconds())) ms")
        logger.info("restored \(report.restored.count) fd(s) total from LUO session '\(sessionName)'; kexec count \(report.kexecCount)")
        for problem in report.problems { logger.warning("restore: \(problem)") }
        return report
    }

    /// After the manager above carried the stores (it preserved them, performed the kexec, and
    /// handed them back in LISTEN_FDS, already placed): takes the update's state, counts the
    /// kexec (only if the boot changed: a restart of ferryd after a kexec that did not happen
    /// just starts the units again), and starts the units that ran before.
    @discardableResult
    public func restoreFromManagerAbove(state bytes: [UInt8], placed: [TakeBackReport.Placed],
                                        startUnits: Bool = true) -> RestoreReport {
        var report = RestoreReport()
        let started = MonotonicClock.microseconds()
        defer { lastRestoreStorage = report }
        guard let state = JSONValue.parse(bytes)?.object else {
            report.problems.append("the live update's state from the manager above is not a JSON object; units are not started")
            logger.warning("restore: \(report.problems[0])")
            return report
        }
        report.found = true
        let rebooted = state["bootID"]?.string != Self.bootID()
        let before = state["kexecCount"]?.number.map { UInt32(clamping: Int64($0)) } ?? manager.kexecCount
        report.kexecCount = rebooted ? before &+ 1 : before
        manager.kexecCount = report.kexecCount
        adoptCarried(state, into: &report)
        report.restored = carriedAbove(placed, preserved: report.update?.preserved ?? [])
        adoptTimings(state, into: &report, restoreStarted: started)
        report.timings.restore = MonotonicClock.microseconds() - started
        logger.info("\(rebooted ? "after the kexec" : "the kexec did not happen"): \(placed.count) stored fd(s) came back from the manager above; kexec count \(report.kexecCount)")
        if startUnits {
            let names = (state["activeUnits"]?.array ?? []).compactMap { $0.string.flatMap(UnitName.init) }
            startRestored(names, report: &report)
        }
        return report
    }

    /// What the manager above handed back, as restored items: each keeps the kind (fd or LUO
    /// session) it was preserved as, so that the update's record counts it as carried, not lost.
    private func carriedAbove(_ placed: [TakeBackReport.Placed], preserved: [LiveUpdateReport.Item]) -> [LiveUpdateReport.Item] {
        var before: [String: LiveUpdateReport.Item] = [:]
        for item in preserved { before["\(item.unit)\u{0}\(item.name)"] = item }
        return placed.map { entry in
            let earlier = before["\(entry.unit)\u{0}\(entry.name)"]
            return LiveUpdateReport.Item(unit: entry.unit, name: entry.name, type: earlier?.type ?? "fd",
                                         sessionName: earlier?.sessionName)
        }
    }

    /// Takes the report a previous ferryd of this boot kept (re-exec, upgrade).
    public func adoptRestoreReport(_ report: RestoreReport) { lastRestoreStorage = report }

    /// The restore report of this boot, updated when the first service is ready.
    public var lastRestoreReport: RestoreReport? { lastRestoreStorage }

    /// `fetched`: the mapping's size and when its bytes were in hand (before the parse).
    private func readMapping(_ session: borrowing LiveUpdateSession, report: inout RestoreReport,
                             fetched: inout (bytes: Int, at: UInt64)) -> LiveUpdateMapping? {
        let bytes: [UInt8]
        do {
            let fd = try session.retrieve(token: LiveUpdateMapping.mappingToken)
            let size = try FileIO.size(of: fd.borrowed)
            guard size <= Int64(LiveUpdateMapping.maximumSize) else {
                report.problems.append("mapping of \(size) bytes is larger than \(LiveUpdateMapping.maximumSize), nothing restored")
                return nil
            }
            bytes = try FileIO.readAll(fd.borrowed)
            fetched = (bytes.count, MonotonicClock.microseconds())
        } catch {
            report.problems.append("cannot read the mapping at token 0: \(error); nothing restored")
            return nil
        }
        switch LiveUpdateMapping.decode(bytes, isValidUnit: { UnitName($0) != nil }) {
        case .success(let reading):
            report.problems += reading.problems
            return reading.mapping
        case .failure(let failure):
            report.problems.append("\(failure); nothing restored")
            return nil
        }
    }

    /// Ferry's other sessions, retrieved when their first entry is: one that cannot be retrieved
    /// loses only its own entries, each reported.
    final class Shards {
        let listed: [String]
        var retrieved: [String: PreparedSession.Shard] = [:]
        var failed: [String: String] = [:]
        /// Group sessions, finished by restoreGroups as soon as their members were taken.
        var finished: Set<String> = []
        init(names: [String]) { listed = names }
    }

    func shard(_ name: String, _ shards: Shards, device: borrowing LiveUpdateDevice) -> Result<PreparedSession.Shard, LiveUpdateError> {
        if let held = shards.retrieved[name] { return .success(held) }
        do throws(LiveUpdateError) {
            let held = PreparedSession.Shard(name: name, session: try incomingSession(.session(name, role: "incoming"), device: device))
            shards.retrieved[name] = held
            return .success(held)
        } catch {
            return .failure(error)
        }
    }

    private func finishShards(_ shards: Shards, device: borrowing LiveUpdateDevice, report: inout RestoreReport) {
        // A listed shard none of whose entries was read still holds memory: take it and finish it.
        for name in shards.listed where shards.retrieved[name] == nil && shards.failed[name] == nil && !shards.finished.contains(name) {
            if case .failure(let error) = shard(name, shards, device: device) {
                report.problems.append("LUO session '\(name)' (a shard of '\(sessionName)'): \(error)")
            }
        }
        for held in shards.retrieved.values {
            do throws(LiveUpdateError) { try held.session.finish() } catch {
                logger.warning("FINISH of LUO session '\(held.name)' failed (the kernel keeps its data until the next update): \(error)")
            }
        }
    }

    private func restore(_ entry: LiveUpdateMapping.Entry, unit: UnitName, service: Service, session: borrowing LiveUpdateSession,
                         shards: Shards, device: borrowing LiveUpdateDevice, report: inout RestoreReport) {
        switch entry {
        case .fd(let name, let token, let shardName):
            do throws(LiveUpdateError) {
                let fd: OwnedFD
                if let shardName {
                    guard PreparedSession.isShard(shardName, of: sessionName) else {
                        report.problems.append("unit \(unit) fd '\(name)': session '\(shardName)' is not one of Ferry's; skipped")
                        return
                    }
                    switch shard(shardName, shards, device: device) {
                    case .success(let held): fd = try held.session.retrieve(token: token)
                    case .failure(let error):
                        if shards.failed[shardName] == nil { shards.failed[shardName] = "\(error)" }
                        report.problems.append("unit \(unit) fd '\(name)' token \(token): its LUO session '\(shardName)' cannot be retrieved (\(error.errno?.symbolicName ?? "\(error.kind)")); lost")
                        return
                    }
                } else {
                    fd = try session.retrieve(token: token)
                }
                guard place(fd, in: service, name: name) else {
                    report.lose(.init(unit: unit.full, name: name, reason: .storeRefused,
                                      detail: "unit \(unit) fd '\(name)' (token \(token)): its store refused it"))
                    return
                }
                report.restored.append(.init(unit: unit.full, name: name, type: "fd", token: token))
                logger.debug("restored fd '\(name)' of \(unit)")
                TestFault.reached("retrieve-fd-\(report.restored.count(where: { $0.type == "fd" }))")
            } catch {
                report.lose(.init(unit: unit.full, name: name, reason: .retrieveFailed,
                                  detail: "unit \(unit) fd '\(name)' token \(token): \(error.operation) failed: \(error.errno?.symbolicName ?? "\(error.kind)")"))
            }
        case .session(let name, let sessionName):
            do throws(LiveUpdateError) {
                let owned = try incomingSession(.session(sessionName, role: "service", unit: unit.full, fdName: name), device: device)
                guard place(owned.releaseDescriptor(), in: service, name: name) else {
                    report.lose(.init(unit: unit.full, name: name, reason: .storeRefused,
                                      detail: "unit \(unit) session '\(sessionName)' (fd name '\(name)'): its store refused it; the kernel finishes it"))
                    return
                }
                report.restored.append(.init(unit: unit.full, name: name, type: "luo_session", sessionName: sessionName))
                logger.info("retrieved LUO session '\(sessionName)' for unit \(unit) fd store '\(name)'")
            } catch {
                report.lose(.init(unit: unit.full, name: name, reason: .retrieveFailed,
                                  detail: "unit \(unit) session '\(sessionName)' (fd name '\(name)'): \(error.operation) failed: \(error.errno?.symbolicName ?? "\(error.kind)")"))
            }
        }
    }

    /// Puts a retrieved fd into its unit's store. A restore carried on after a crash retrieves
    /// again what the dead ferryd had stored, and the manager above handed back: the same open
    /// file, already in the store, which counts as restored.
    private func place(_ fd: consuming OwnedFD, in service: Service, name: String) -> Bool {
        if isResuming && service.store.holds(sameOpenFileAs: fd.borrowed) {
            logger.debug("\(service.name): fd '\(name)' was in its store already (put there before ferryd died)")
            return true
        }
        return manager.stores.attach(fd, to: service, name: name, origin: "LUO")
    }

    /// FINISH Ferry's own session: tokens never retrieved are discarded by the kernel now.
    private func finish(_ session: consuming LiveUpdateSession) {
        do throws(LiveUpdateError) { try session.finish() } catch {
            logger.warning("FINISH of LUO session '\(sessionName)' failed (the kernel keeps its data until the next update): \(error)")
        }
    }

    /// What the old side preserved, from its mapping's entries (its report left them out), in
    /// mapping order, then `carried`: the items of groups, which the report kept.
    static func preservedItems(in mapping: LiveUpdateMapping, besides carried: [LiveUpdateReport.Item]) -> [LiveUpdateReport.Item] {
        let grouped = Set(carried.map { "\($0.unit)\u{0}\($0.sessionName ?? "")\u{0}\($0.token ?? 0)" })
        var items: [LiveUpdateReport.Item] = []
        for (unit, entries) in mapping.units {
            for entry in entries {
                switch entry {
                case .fd(let name, let token, let shard):
                    guard !grouped.contains("\(unit)\u{0}\(shard ?? "")\u{0}\(token)") else { continue }
                    items.append(.init(unit: unit, name: name, type: "fd", token: token, sessionName: shard))
                case .session(let name, let sessionName):
                    items.append(.init(unit: unit, name: name, type: "luo_session", sessionName: sessionName))
                }
            }
        }
        return items + carried
    }

    /// The old side's report and the history it carried (see `carriedAlong`).
    private func adoptCarried(_ ferry: [String: JSONValue], into report: inout RestoreReport) {
        report.update = ferry["report"]?.decode(LiveUpdateReport.self)
        carriedFromPreviousBoot = ferry["history"]
        carriedSessionsFromPreviousBoot = ferry["broker"]
    }

    private func adoptTimings(_ ferry: [String: JSONValue], into report: inout RestoreReport, restoreStarted: UInt64) {
        if let before = ferry["timings"]?.decode(LiveUpdateTimings.self) { report.timings = before }
        report.lostBeforeKexec = ferry["lost"]?.decode([Lost].self)
        let finish = ferry["shutdownFinish"]?.number.map { UInt64($0) }
        if let start = ferry["shutdownStart"]?.number { report.previousShutdown["start"] = UInt64(start) }
        if let finish { report.previousShutdown["finish"] = finish }
        // In a rehearsal the monotonic clock runs on; after a real kexec it starts again at boot.
        if ferry["bootID"]?.string == Self.bootID(), let finish, restoreStarted >= finish {
            report.timings.kexec = restoreStarted - finish
        } else {
            report.timings.kexec = restoreStarted
        }
    }

    func startRestored(_ names: [UnitName], report: inout RestoreReport) {
        let restoreEnd = MonotonicClock.microseconds()
        var firstReady: UInt64?
        let restarted = RestartedUnits(origin: restoreEnd)
        manager.observeStates { [weak self] service in
            let noted = restarted.note(service)
            let firstNow = firstReady == nil && (service.state.active == .active || service.state == .pinned)
            if firstNow { firstReady = MonotonicClock.microseconds() - restoreEnd }
            // One change of the report for both: each change reaches the observer, which logs the
            // update's summary as soon as every unit is ready, and must see the blackout then.
            guard noted || firstNow, let self, var changed = lastRestoreStorage else { return }
            if noted { changed.services = restarted.services }
            if firstNow { changed.timings.ready = firstReady }
            lastRestoreStorage = changed
        }
        var startable: [String] = []
        for name in names {
            guard !manager.units.service(name).isStub else {
                report.problems.append("unit \(name) ran before the update but has no unit file now; not started")
                continue
            }
            startable.append(name.full)
            restarted.expect(name)
        }
        report.startedUnits = startable
        // In dependency order, with what is enabled (default.target) in the same transaction.
        manager.jobs.start(startable + ["default.target"]) { [weak self] unit, succeeded in
            guard !succeeded, unit != "default.target", let self else { return }
            if let name = UnitName(unit), restarted.failedToStart(name) { lastRestoreStorage?.services = restarted.services }
            let service = UnitName(unit).flatMap { self.manager.services[$0] }
            lastRestoreStorage?.problems.append("unit \(unit) could not start after the update: \(service?.result ?? "failed")")
        }
        // A Type=simple unit is ready inside start(): record it here, as lastRestoreStorage is
        // written only when restoreAfterBoot returns; later readiness updates it directly.
        report.timings.ready = firstReady
        report.services = restarted.services
    }
}
