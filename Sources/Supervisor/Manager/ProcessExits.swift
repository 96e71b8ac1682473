import FerrySystem
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Exits: a main process that ended (on its own, or asked to), Type=forking's parent returning,
/// Restart=, and the unit coming to rest with or without its store.
extension ProcessLifecycle {
    // MARK: - Exits

    /// Reaps every exited child; called on SIGCHLD.
    public func reapChildren() {
        while let (pid, exit) = Processes.reapAny() {
            if let onExit = helpers.removeValue(forKey: pid) {
                onExit(exit)
            } else if let service = controlByPID.removeValue(forKey: pid) {
                controlExited(service, exit)
            } else if let service = byPID.removeValue(forKey: pid) {
                mainExited(service, exit)
            } else {
                logger.debug("reaped pid \(pid) (\(exit)), not a main or control process")
            }
        }
    }

    private func mainExited(_ service: Service, _ exit: Processes.Exit) {
        service.mainPID = nil
        logger.info("\(service.name): main process \(exit)")
        if service.config.type == .forking && service.state == .starting && !service.stopRequested {
            return forkingParentExited(service, exit)
        }
        // Leftover processes of the unit end with the main process, unless KillMode= keeps them.
        if service.config.killMode == .controlGroup || service.config.killMode == .mixed { signalUnit(service, SIGKILL) }
        if service.controlPID == nil { controlGroups?.release(service.name) }
        if service.stopRequested {
            if service.controlPID == nil { finishStop(service, exit: exit) }
            return
        }
        let command = service.config.execStart.indices.contains(service.commandIndex)
            ? service.config.execStart[service.commandIndex] : nil
        let success = exit.isSuccess || command?.ignoreFailure == true
        if service.config.type == .oneshot && success && service.commandIndex + 1 < service.config.execStart.count {
            service.commandIndex += 1
            if !launch(service) { enterFinal(service, failed: true) }
            return
        }
        if service.config.type == .notify && service.state == .starting && success {
            logger.warning("\(service.name): exited before sending READY=1")
            service.result = "protocol"
            return settle(service, success: false)
        }
        if success && service.config.type == .oneshot && service.state == .starting {
            return mainIsUp(service)
        }
        // A result already set (a timeout that led to the kill) says more than the signal.
        if !success && service.result == "success" { service.result = Self.result(of: exit) }
        settle(service, success: success)
    }

    /// A stop is complete: the unit comes to rest, or starts again (restart).
    func finishStop(_ service: Service, exit: Processes.Exit) {
        cancelTimer(service)
        service.stopRequested = false
        let clean = exit == .signaled(SIGTERM) || exit == .signaled(SIGKILL) || exit.isSuccess
        if !clean && service.result == "success" { service.result = Self.result(of: exit) }
        let restartNow = service.startAfterStop
        // Observers see the stop half of a restart with startAfterStop still set, so that a
        // caller waiting for the restart is answered when the unit is back, not in between.
        enterFinal(service, failed: service.result != "success", keepStore: restartNow)
        service.startAfterStop = false
        if restartNow { try? start(service) }
    }

    /// The main process is gone on its own: restart as Restart= says, or come to rest.
    private func settle(_ service: Service, success: Bool) {
        let wantsRestart = service.config.restart == .always
            ? service.config.type != .oneshot || !success
            : service.config.restart == .onFailure && !success
        if wantsRestart {
            scheduleRestart(service, failed: !success)
        } else {
            enterFinal(service, failed: !success)
        }
    }

    /// Type=forking: the parent returned; the daemon it left is the main process from now on.
    private func forkingParentExited(_ service: Service, _ exit: Processes.Exit) {
        guard exit.isSuccess else {
            service.result = Self.result(of: exit)
            signalUnit(service, SIGKILL)
            return settle(service, success: false)
        }
        guard let daemon = forkedDaemon(of: service) else {
            logger.error("\(service.name): the parent exited but no daemon process was found\(service.config.pidFile.map { " (PIDFile=\($0))" } ?? "")")
            service.result = "protocol"
            signalUnit(service, SIGKILL)
            return settle(service, success: false)
        }
        service.mainPID = daemon
        byPID[daemon] = service
        if let group = Processes.processGroup(of: daemon) { service.processGroup = group }
        logger.info("\(service.name): daemon is pid \(daemon)")
        mainIsUp(service)
    }

    /// PIDFile= when given, else the one process left in the unit's group.
    private func forkedDaemon(of service: Service) -> pid_t? {
        if let file = service.config.pidFile {
            guard let text = FileIO.text(ofFile: file, limit: 64),
                let pid = text.split(whereSeparator: { $0.isWhitespace }).first.flatMap({ pid_t($0) }), pid > 0,
                Glibc.kill(pid, 0) == 0
            else { return nil }
            return pid
        }
        guard let group = service.processGroup else { return nil }
        let members = Processes.members(ofGroup: group)
        return members.count == 1 ? members[0] : nil
    }

    static func result(of exit: Processes.Exit) -> String {
        if case .signaled = exit { return "signal" }
        return "exit-code"
    }

    private func scheduleRestart(_ service: Service, failed: Bool) {
        if service.config.fdStorePreserve == .no { service.store.removeAll() }
        setState(service, .autoRestart)
        service.restarts += 1
        armRestart(service)
    }

    /// Starts the unit again after RestartSec=, or at once when no timer can be made.
    func armRestart(_ service: Service) {
        let restart = { [unowned self] in
            guard service.state.sub == .autoRestart else { return }
            do throws(ManagerError) {
                try start(service)
            } catch {
                logger.warning("\(service.name): restart failed: \(error.message)")
            }
        }
        do throws(SystemCallError) {
            try armTimer(service, after: service.config.restartDelay, restart)
        } catch {
            logger.error("\(service.name): cannot arm the RestartSec= timer (\(error)); restarting now")
            restart()
        }
    }

    /// The unit comes to rest: dead, failed, or dead with its store pinned.
    func enterFinal(_ service: Service, failed: Bool, keepStore: Bool = false) {
        cancelTimer(service)
        service.controlStep = nil
        service.controlQueue = []
        let preserve = service.config.fdStorePreserve
        let releaseStore: Bool
        if service.holdStoreForLiveUpdate {
            setState(service, failed ? .failed : (service.store.isEmpty ? .dead : .pinned))
            return
        }
        switch preserve {
        case .no: releaseStore = true
        case .restart: releaseStore = !keepStore
        case .yes: releaseStore = false
        case .onSuccess: releaseStore = failed && !keepStore
        }
        if releaseStore && !service.store.isEmpty {
            logger.debug("\(service.name): releasing \(service.store.count) stored fd(s) (FileDescriptorStorePreserve=\(preserve.rawValue))")
            service.store.removeAll()
        }
        if failed {
            setState(service, .failed)
        } else {
            setState(service, preserve.outlivesProcess && !service.store.isEmpty ? .pinned : .dead)
        }
    }
}
