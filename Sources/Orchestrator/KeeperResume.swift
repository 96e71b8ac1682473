import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Supervisor

/// A fresh ferryd taking back from the keeper what a ferryd that died during a live update or a
/// restore left there, and finishing that work:
///
/// - died while preparing (stop, serialize, preserve, hand-over), and no kexec followed: roll
///   back. Every unit's store comes back from the keeper's copies, the partial session closes,
///   and the units that were active start again.
/// - died after a (simulated) kexec, or while restoring: restore, from the session fds the keeper
///   held (RETRIEVE_FD works on a retrieved session fd whoever holds it; the files retrieved before
///   the death are retrieved again, as the same open files).
/// - died after the restore's FINISH: the stores come back from the keeper's copies (taken just
///   before FINISH), and the units start.
extension LiveUpdateOrchestrator {
    /// Runs at start, before the ordinary restore; false when no keeper answers (then the ordinary
    /// restore runs).
    public func resumeFromKeeper() -> Bool {
        guard let configuration = keeperConfiguration,
            let link = KeeperLink.connect(configuration.socketPath, logger: logger)
        else { return false }
        // The sessions first: the stores only if they are what comes back (a restore retrieves
        // its own, and holding both could double ferryd's fds).
        do throws(KeeperLink.Failure) {
            try link.take(.session, into: &resumed)
        } catch {
            logger.error("live update: the keeper at \(configuration.socketPath) did not hand back what it holds (\(error)); it keeps holding it")
            return false
        }
        keeper = link
        let phase = resumed.phase
        logger.notice("live update: a keeper holds copies for an update whose ferryd is gone (phase '\(phase)', after a rehearsal's exec or a crash; \(resumed.items.count) session(s)); carrying on from there")
        if phase == "restored" {
            placeHeldStores(why: "ferryd died after the restore's FINISH; every store came back from the keeper")
        } else if !restoreAfterBoot().found {
            placeHeldStores(why: "ferryd died during the live update (phase '\(phase)') before the kexec; rolled back from the keeper's copies")
        }
        resumed = KeeperTaken()
        return true
    }

    /// RETRIEVE_SESSION, or the copy the keeper (or the manager above) held for a dead ferryd. A
    /// copy goes to the keeper and to the manager above that holds sessions at once, filed as
    /// `item`. The caller owns the session.
    func incomingSession(_ item: KeeperWire.Item, device: borrowing LiveUpdateDevice) throws(LiveUpdateError) -> LiveUpdateSession {
        let session: LiveUpdateSession
        if let held = resumed.takeIncomingSession(named: item.name) {
            session = LiveUpdateSession(adopting: held, name: item.name, direction: .incoming, backend: backend)
        } else {
            session = try device.retrieveSession(named: item.name)
        }
        keeper?.hold(item, fd: session.descriptor.rawValue)
        holdAbove(session, name: item.name)
        return session
    }

    /// Whether this ferryd is carrying on from a keeper (the keeper is then let go only once the
    /// resumed work is done).
    var isResuming: Bool { !resumed.isEmpty }

    /// Puts the stores the keeper held back into their units, closes the sessions it held (a
    /// partial outgoing session is dropped; an incoming one was finished), and starts the units
    /// that ran before the update.
    private func placeHeldStores(why: String) {
        do throws(KeeperLink.Failure) {
            try keeper?.take(.store, into: &resumed)
        } catch {
            logger.error("live update: the keeper did not hand back the stores (\(error)); it keeps holding them")
            return
        }
        var report = RestoreReport()
        report.found = true
        report.kexecCount = resumed.state["kexecCount"]?.number.map { UInt32(clamping: Int64($0)) } ?? manager.kexecCount
        manager.kexecCount = report.kexecCount
        report.problems.append(why)
        resumed.takeStores { unit, name, fd in
            guard let unitName = UnitName(unit) else { return }
            guard manager.stores.attach(fd, to: unitName, name: name, origin: "the keeper") else {
                report.lose(.init(unit: unit, name: name, reason: .storeRefused, detail: "unit \(unit) fd '\(name)': its store refused it"))
                return
            }
            report.restored.append(.init(unit: unit, name: name, type: "fd"))
        }
        // Closed before anything else happens: the next update may create a session of the same name.
        keeper?.forget(kind: .session)
        keeper?.sync()
        noteKeeperPhase("roll-back", activeUnits: resumedActiveUnits, kexecCount: report.kexecCount)
        logger.notice("live update: \(why): \(report.restored.count) fd(s) back in their stores")
        startRestored(resumedActiveUnits, report: &report)
        lastRestoreStorage = report
        releaseKeeperWhenSettled()
    }

    private var resumedActiveUnits: [UnitName] {
        (resumed.state["activeUnits"]?.array ?? []).compactMap { $0.string.flatMap(UnitName.init) }
    }
}
