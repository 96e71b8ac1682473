import FerryJSON
import FerrySystem
import Supervisor

/// When the orchestrator starts a keeper, what it tells it as an update or a restore goes on,
/// and when it lets it go.
extension LiveUpdateOrchestrator {
    /// Starts a keeper (or keeps the one already serving) and hands it every store, before anything
    /// is stopped. Nothing to do where no keeper is configured (PID 1, or a manager above carries
    /// the stores).
    func startKeeper(activeUnits: [UnitName]) throws(KeeperLink.Failure) {
        guard let configuration = keeperConfiguration else { return }
        cancelKeeperRelease()
        if let keeper {
            // Still serving the last restore: the sessions it retrieved are this boot's incoming
            // ones, which no kexec carries again; kept, a crash would hand them to the next
            // restore in place of the sessions it must retrieve. Their stores' copies stay.
            keeper.forget(role: "incoming")
            keeper.forget(role: "service")
        } else {
            keeper = try KeeperLink.spawn(configuration, logger: logger)
        }
        noteKeeperPhase("load-kernel", activeUnits: activeUnits)
        keeper?.holdStores(of: manager)
    }

    /// Starts a keeper for a restore, before any session is retrieved.
    func startKeeperForRestore() {
        guard keeper == nil, let configuration = keeperConfiguration else { return }
        do throws(KeeperLink.Failure) {
            keeper = try KeeperLink.spawn(configuration, logger: logger)
        } catch {
            logger.warning("restore without a keeper (a crash of ferryd now would lose the retrieved sessions): \(error)")
        }
    }

    /// The state a restarted ferryd reads: which step was reached, and which units to start.
    func noteKeeperPhase(_ phase: String, activeUnits: [UnitName], kexecCount: UInt32? = nil) {
        guard let keeper else { return }
        var state: [String: JSONValue] = [
            "phase": .string(phase),
            "activeUnits": .array(activeUnits.map { .string($0.full) }),
            "bootID": .string(Self.bootID()),
            "session": .string(sessionName),
        ]
        if let kexecCount { state["kexecCount"] = .number(Double(kexecCount)) }
        keeper.setState(state)
    }

    /// Lets the keeper go once no job is left (every unit to start got its fds, or failed) and no
    /// update is under way; checked every 200 ms.
    func releaseKeeperWhenSettled() {
        guard keeper != nil, keeperRelease == nil, let timer = try? TimerFD() else { return }
        timer.arm(after: .milliseconds(200))
        let fd = timer.descriptor.rawValue
        keeperRelease = consume timer
        try? manager.loop.watch(fd, for: .readable) { [unowned self] _ in
            keeperRelease?.acknowledge()
            guard manager.jobs.isIdle, phase == nil else {
                keeperRelease?.arm(after: .milliseconds(200))
                return
            }
            cancelKeeperRelease()
            keeper?.release()
            keeper = nil
        }
    }

    /// Lets the keeper go now (before a daemon-reexec, which no update runs through: the new
    /// image would never reconnect, and the keeper would wait with stale copies). The stores are
    /// in ferryd's own hands by then and ride the re-exec.
    public func releaseKeeperNow() {
        guard phase == nil, let keeper else { return }
        cancelKeeperRelease()
        keeper.release()
        self.keeper = nil
    }

    private func cancelKeeperRelease() {
        if let fd = keeperRelease?.descriptor.rawValue { manager.loop.unwatch(fd) }
        keeperRelease = nil
    }
}
