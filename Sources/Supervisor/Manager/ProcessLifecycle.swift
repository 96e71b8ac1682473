import FDStore
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Why a start, stop or clean was refused.
public struct ManagerError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case noSuchUnit, unitBusy, startFailed, notLoaded }
    public var code: Code
    public var unit: String
    public var message: String

    public var description: String { "\(unit): \(message)" }
}

/// Process lifecycle: starting units, stopping them (SIGTERM, then SIGKILL after
/// TimeoutStopSec=), their exits, Restart=, and the timers behind those.
///
/// Confined to the event-loop thread; every state change goes through `UnitStates`.
public final class ProcessLifecycle {
    let loop: EventLoop
    let logger: Logger
    let states: UnitStates
    let units: UnitRegistry
    let notifySocketPath: String
    /// Main processes by pid (MAINPID= moves an entry).
    var byPID: [pid_t: Service] = [:]
    /// Children that are not services' (a helper ferryd started), with who wants their exit.
    private var helpers: [pid_t: (Processes.Exit) -> Void] = [:]
    /// cgroup v2 tracking, when ferryd can create cgroups (process groups otherwise).
    public var controlGroups: ControlGroups?
    /// Added to every service's environment (e.g. FERRY_LIVEUPDATE_EMULATOR during a rehearsal).
    public var extraEnvironment: [String] = []

    init(loop: EventLoop, units: UnitRegistry, states: UnitStates, notifySocketPath: String, logger: Logger) {
        self.loop = loop
        self.units = units
        self.states = states
        self.notifySocketPath = notifySocketPath
        self.logger = logger
    }

    func setState(_ service: Service, _ state: ServiceState) { states.set(service, state) }

    // MARK: - Start

    /// Starts `service` unless it runs already. Returns at once; observers hear when it is up.
    public func start(_ service: Service) throws(ManagerError) {
        if service.isStub {
            throw ManagerError(code: .notLoaded, unit: service.name.full, message: "no unit file (not-found)")
        }
        switch service.state.active {
        case .active, .activating, .reloading:
            if service.state.sub != .autoRestart { return }
        case .deactivating:
            service.startAfterStop = true
            return
        case .inactive, .failed: break
        }
        cancelTimer(service)
        guard admitStart(service) else {
            service.result = "start-limit-hit"
            logger.warning("\(service.name): start request repeated too quickly (StartLimitBurst=\(service.config.startLimitBurst) in \(service.config.startLimitInterval)), refusing to start")
            enterFinal(service, failed: true)
            throw ManagerError(code: .startFailed, unit: service.name.full, message: "start limit hit")
        }
        service.stopRequested = false
        service.commandIndex = 0
        service.statusText = nil
        service.result = "success"
        if !launch(service) {
            enterFinal(service, failed: true)
            throw ManagerError(code: .startFailed, unit: service.name.full, message: "could not spawn: \(service.result)")
        }
    }

    /// StartLimitBurst= starts per StartLimitIntervalSec=.
    private func admitStart(_ service: Service) -> Bool {
        let now = MonotonicClock.now()
        service.recentStarts.removeAll { now - $0 > service.config.startLimitInterval }
        guard service.config.startLimitBurst == 0 || service.recentStarts.count < service.config.startLimitBurst else {
            return false
        }
        service.recentStarts.append(now)
        return true
    }

    /// Spawns the current ExecStart= line; false (with `result` set) when it could not.
    private func launch(_ service: Service) -> Bool {
        guard service.commandIndex < service.config.execStart.count else {
            logger.error("\(service.name): no ExecStart= to run")
            service.result = "resources"
            return false
        }
        let command = service.config.execStart[service.commandIndex]
        var request: SpawnRequest
        do throws(ParseError) {
            request = try spawnRequest(for: service, command: command)
        } catch {
            logger.error("\(service.name): \(error)")
            service.result = "resources"
            return false
        }
        // The child writes itself into its cgroup before exec; the fd is closed when launch returns.
        let cgroupFD: CInt = controlGroups?.prepare(service.name)?.release() ?? -1
        defer { if cgroupFD >= 0 { close(cgroupFD) } }
        request.cgroupProcsFD = cgroupFD
        let pid: pid_t
        do throws(SystemCallError) {
            pid = try Spawner.spawn(request)
        } catch {
            logger.error("\(service.name): failed to start \(command.path): \(error.errno.symbolicName) (\(error.errno))")
            service.result = "resources"
            return false
        }
        service.mainPID = pid
        service.processGroup = pid
        byPID[pid] = service
        let handed = request.listenDescriptors.isEmpty ? "" : " with \(request.listenDescriptors.count) stored fd(s)"
        logger.info("\(service.name): started \(command.path) as pid \(pid)\(handed)")
        setState(service, service.config.type == .simple ? .running : .starting)
        return true
    }

    // MARK: - Stop

    /// Stops `service`: SIGTERM to its process group, SIGKILL after TimeoutStopSec=.
    ///
    /// - Parameter keepingStore: a live update is stopping it: the store stays whatever the
    ///   preserve mode, until the update either carries it or rolls back.
    public func stop(_ service: Service, keepingStore: Bool = false) {
        service.startAfterStop = false
        if keepingStore { service.holdStoreForLiveUpdate = true }
        stopProcesses(service)
    }

    /// Ends a live update's hold on `service`'s store (after a rollback restarted it, or if it never ran).
    public func releaseLiveUpdateHold(_ service: Service) {
        service.holdStoreForLiveUpdate = false
    }

    /// Stops and starts again; the store is kept across it whatever FileDescriptorStorePreserve= says
    /// (except `no`), as systemd keeps it while a job is queued.
    public func restart(_ service: Service) throws(ManagerError) {
        guard !service.isStub else {
            throw ManagerError(code: .notLoaded, unit: service.name.full, message: "no unit file (not-found)")
        }
        if service.mainPID == nil {
            cancelTimer(service)
            if service.state.sub == .autoRestart { setState(service, .dead) }
            try start(service)
            return
        }
        service.startAfterStop = true
        stopProcesses(service)
    }

    private func stopProcesses(_ service: Service) {
        cancelTimer(service)
        guard let group = service.processGroup, service.mainPID != nil else {
            if service.state.sub == .autoRestart || service.state == .exited || service.state == .running {
                enterFinal(service, failed: false)
            }
            return
        }
        service.stopRequested = true
        signalUnit(service, group: group, SIGTERM)
        setState(service, .stopping)
        armStopTimeout(service)
    }

    /// SIGKILL after TimeoutStopSec= unless the unit is down by then.
    func armStopTimeout(_ service: Service) {
        do throws(SystemCallError) {
            try armTimer(service, after: service.config.stopTimeout) { [unowned self] in
                guard service.state == .stopping else { return }
                logger.warning("\(service.name): did not stop within TimeoutStopSec=\(service.config.stopTimeout), killing")
                kill(service)
            }
        } catch {
            // Without the timer SIGKILL would never follow: send it now rather than wait for ever.
            logger.error("\(service.name): cannot arm the TimeoutStopSec= timer (\(error)); killing now")
            kill(service)
        }
    }

    private func kill(_ service: Service) {
        guard let group = service.processGroup else { return }
        service.result = "timeout"
        signalUnit(service, group: group, SIGKILL)
        setState(service, .killing)
    }

    // MARK: - Exits

    /// Reaps every exited child; called on SIGCHLD.
    public func reapChildren() {
        while let (pid, exit) = Processes.reapAny() {
            if let onExit = helpers.removeValue(forKey: pid) {
                onExit(exit)
                continue
            }
            guard let service = byPID.removeValue(forKey: pid) else {
                logger.debug("reaped pid \(pid) (\(exit)), not a main process")
                continue
            }
            mainExited(service, exit)
        }
    }

    private func mainExited(_ service: Service, _ exit: Processes.Exit) {
        service.mainPID = nil
        // Leftover processes of the unit end with the main process.
        if let group = service.processGroup { signalUnit(service, group: group, SIGKILL) }
        controlGroups?.release(service.name)
        let command = service.config.execStart.indices.contains(service.commandIndex)
            ? service.config.execStart[service.commandIndex] : nil
        let cleanStop = service.stopRequested && (exit == .signaled(SIGTERM) || exit == .signaled(SIGKILL) || exit.isSuccess)
        let success = exit.isSuccess || command?.ignoreFailure == true || cleanStop
        logger.info("\(service.name): main process \(exit)")
        if service.stopRequested {
            cancelTimer(service)
            service.stopRequested = false
            if !success && service.result == "success" { service.result = Self.result(of: exit) }
            let restartNow = service.startAfterStop
            service.startAfterStop = false
            enterFinal(service, failed: !success, keepStore: restartNow)
            if restartNow { try? start(service) }
            return
        }
        if service.config.type == .oneshot && success && service.commandIndex + 1 < service.config.execStart.count {
            service.commandIndex += 1
            if !launch(service) { enterFinal(service, failed: true) }
            return
        }
        if service.config.type == .notify && service.state == .starting && success {
            logger.warning("\(service.name): exited before sending READY=1")
        }
        if !success { service.result = Self.result(of: exit) }
        if success && service.config.type == .oneshot && service.config.remainAfterExit {
            setState(service, .exited)
            return
        }
        let wantsRestart = service.config.restart == .always
            ? service.config.type != .oneshot || !success
            : service.config.restart == .onFailure && !success
        if wantsRestart {
            scheduleRestart(service, failed: !success)
        } else {
            enterFinal(service, failed: !success)
        }
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

    /// Spawns a helper command (not a unit) and calls `onExit` when it ends.
    public func spawnHelper(_ arguments: [String], onExit: @escaping (Processes.Exit) -> Void) throws(SystemCallError) {
        guard let program = arguments.first, let path = ExecCommand.resolve(program) else {
            throw SystemCallError("execve(\(arguments.first ?? ""))", .noSuchFileOrDirectory)
        }
        let pid = try Spawner.spawn(SpawnRequest(path: path, arguments: arguments,
                                                 environment: ["PATH=" + ExecCommand.searchPath.joined(separator: ":")]))
        helpers[pid] = onExit
    }

    // MARK: - Signals

    /// Signals every process of the unit: its cgroup when tracked, and its process group.
    func signalUnit(_ service: Service, group: pid_t, _ signal: CInt) {
        controlGroups?.signal(service.name, signal)
        if Processes.groupAlive(group) { Processes.signalGroup(group, signal) }
    }

    // MARK: - Timers

    /// Runs `action` once after `delay`, replacing the unit's previous timer.
    ///
    /// - Throws: when no timer can be made (out of fds): the caller must not wait for it.
    func armTimer(_ service: Service, after delay: Duration, _ action: @escaping () -> Void) throws(SystemCallError) {
        cancelTimer(service)
        let timer = try TimerFD()
        let fd = timer.descriptor.rawValue
        try loop.watch(fd, for: .readable) { [unowned self] _ in
            cancelTimer(service)
            action()
        }
        timer.arm(after: delay)
        service.timer = consume timer
    }

    func cancelTimer(_ service: Service) {
        if let fd = service.timer?.descriptor.rawValue { loop.unwatch(fd) }
        service.timer = nil
    }
}
