import CFerry
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

    public init(code: Code, unit: String, message: String) {
        self.code = code
        self.unit = unit
        self.message = message
    }
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
    /// ExecStartPre=/ExecStartPost=/ExecStop= processes by pid, and the command each runs.
    var controlByPID: [pid_t: Service] = [:]
    var currentControlCommand: [pid_t: ExecCommand] = [:]
    /// Children that are not services' (a helper ferryd started), with who wants their exit.
    var helpers: [pid_t: (Processes.Exit) -> Void] = [:]
    /// cgroup v2 tracking, when ferryd can create cgroups (process groups otherwise).
    public var controlGroups: ControlGroups?
    /// Added to every service's environment (e.g. FERRY_LIVEUPDATE_EMULATOR during a rehearsal).
    public var extraEnvironment: [String] = []
    /// Runs before a unit's first ExecStart= line is spawned (LUOSession= fills the store here).
    public var beforeMainStart: ((Service) -> Void)?
    /// Where units' stdout and stderr go (nil: ferryd's own stderr).
    var output: UnitOutput?

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
        service.startFailure = nil
        service.result = "success"
        armStartTimeout(service)
        if !service.config.execStartPre.isEmpty {
            setState(service, .startingPre)
            runControl(service, .startPre, service.config.execStartPre)
            return
        }
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

    /// TimeoutStartSec=: a unit still activating then is stopped and fails with "timeout".
    private func armStartTimeout(_ service: Service) {
        guard let limit = service.config.startTimeout else { return }
        do throws(SystemCallError) {
            try armTimer(service, after: limit) { [unowned self] in
                guard service.state.active == .activating, service.state.sub != .autoRestart else { return }
                logger.warning("\(service.name): start operation timed out (TimeoutStartSec=\(limit)); terminating")
                service.result = "timeout"
                stopProcesses(service)
            }
        } catch {
            logger.error("\(service.name): cannot arm the TimeoutStartSec= timer (\(error)); the start has no time limit")
        }
    }

    /// Spawns the current ExecStart= line; false (with `result` set) when it could not.
    @discardableResult
    func launch(_ service: Service) -> Bool {
        guard service.commandIndex < service.config.execStart.count else {
            logger.error("\(service.name): no ExecStart= to run")
            service.result = "resources"
            return false
        }
        let command = service.config.execStart[service.commandIndex]
        if service.commandIndex == 0 { beforeMainStart?(service) }
        guard let pid = spawn(command, for: service, handingStore: true) else { return false }
        service.mainPID = pid
        service.processGroup = pid
        byPID[pid] = service
        switch service.config.type {
        case .simple: mainIsUp(service)
        case .notify, .oneshot, .forking: setState(service, .starting)
        }
        return true
    }

    /// Spawns `command` in the unit's cgroup (when tracked); nil (with `result` set) when it could not.
    func spawn(_ command: ExecCommand, for service: Service, handingStore: Bool) -> pid_t? {
        var command = command
        if !command.path.hasPrefix("/") {
            // A program named without a path is looked up when it starts (it may have been installed since).
            guard let found = ExecCommand.resolve(command.path) else {
                let failure = "\(command.path): \(Errno.noSuchFileOrDirectory) (ENOENT): not found in \(ExecCommand.searchPath.joined(separator: ":"))"
                logger.error("\(service.name): failed to start \(failure)")
                service.result = "exec"
                service.startFailure = failure
                return nil
            }
            command.path = found
        }
        var request: SpawnRequest
        do throws(ParseError) {
            request = try spawnRequest(for: service, command: command, handingStore: handingStore)
        } catch {
            logger.error("\(service.name): \(error)")
            service.result = "resources"
            service.startFailure = "\(error)"
            return nil
        }
        // The child writes itself into its cgroup before exec; the fd is closed when this returns.
        let cgroupFD: CInt = controlGroups?.prepare(service.name)?.release() ?? -1
        defer { if cgroupFD >= 0 { close(cgroupFD) } }
        request.cgroupProcsFD = cgroupFD
        do throws(SystemCallError) {
            let pid = try Spawner.spawn(request)
            let handed = request.listenDescriptors.isEmpty ? "" : " with \(request.listenDescriptors.count) stored fd(s)"
            logger.info("\(service.name): started \(command.path) as pid \(pid)\(handed)")
            return pid
        } catch {
            logger.error("\(service.name): failed to start \(command.path): \(error.errno.symbolicName) (\(error.errno))")
            service.result = error.errno == .noSuchFileOrDirectory || error.errno == .permissionDenied ? "exec" : "resources"
            service.startFailure = "\(command.path): \(error.errno) (\(error.errno.symbolicName))"
            return nil
        }
    }

    /// The main process is up (simple: spawned; notify: READY=1; forking: the parent returned):
    /// ExecStartPost= runs, then the unit is active.
    func mainIsUp(_ service: Service) {
        if !service.config.execStartPost.isEmpty {
            setState(service, .startingPost)
            runControl(service, .startPost, service.config.execStartPost)
            return
        }
        becomeActive(service)
    }

    /// Start done: running, or for a finished oneshot exited/dead.
    func becomeActive(_ service: Service) {
        if service.state.active == .activating { cancelTimer(service) }  // the start timeout
        if service.config.type == .oneshot && service.mainPID == nil {
            if service.config.remainAfterExit { setState(service, .exited) } else { enterFinal(service, failed: false) }
            return
        }
        setState(service, .running)
    }

    /// READY=1 from the unit.
    public func ready(_ service: Service) {
        switch service.state {
        case .starting where service.config.type == .notify: mainIsUp(service)
        case .reloading:
            cancelTimer(service)
            setState(service, .running)
        default: break
        }
    }

    /// STOPPING=1: the unit is going down by itself; TimeoutStopSec= still bounds it.
    func stoppingNotified(_ service: Service) {
        guard service.state.active != .deactivating, service.mainPID != nil else { return }
        setState(service, .stopping)
        armStopTimeout(service)
    }

    /// RELOADING=1: READY=1 must follow within TimeoutStartSec= (90 s without one), or the unit
    /// is taken as running again with a warning, never left reloading for ever.
    func reloadingNotified(_ service: Service) {
        guard service.state == .running else { return }
        setState(service, .reloading)
        let limit = service.config.startTimeout ?? .seconds(90)
        do throws(SystemCallError) {
            try armTimer(service, after: limit) { [unowned self] in
                guard service.state == .reloading else { return }
                logger.warning("\(service.name): sent RELOADING=1 but no READY=1 within \(limit); taken as running")
                setState(service, .running)
            }
        } catch {
            logger.error("\(service.name): cannot arm the reload timer (\(error)); taken as running now")
            setState(service, .running)
        }
    }

    // MARK: - Stop

    /// Stops `service`: ExecStop=, then SIGTERM (as KillMode= says), SIGKILL after TimeoutStopSec=.
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
        if service.mainPID == nil && service.controlPID == nil {
            cancelTimer(service)
            if service.state.sub == .autoRestart { setState(service, .dead) }
            try start(service)
            return
        }
        service.startAfterStop = true
        stopProcesses(service)
    }

    func stopProcesses(_ service: Service) {
        cancelTimer(service)
        guard !service.stopRequested else { return }
        // ExecStop= only for a unit that came up, as systemd does.
        let cameUp = service.state.active == .active || service.state.active == .reloading
        if cameUp && !service.config.execStop.isEmpty {
            service.stopRequested = true
            setState(service, .stoppingCommand)
            armStopTimeout(service)
            runControl(service, .stop, service.config.execStop)
            return
        }
        guard service.mainPID != nil || service.controlPID != nil else {
            if service.state.sub == .autoRestart || service.state == .exited || service.state == .running {
                enterFinal(service, failed: false)
            }
            return
        }
        service.stopRequested = true
        terminate(service)
    }

    /// SIGTERM as KillMode= says, then wait for the exit (SIGKILL after TimeoutStopSec=).
    func terminate(_ service: Service) {
        if let control = service.controlPID { Processes.signal(control, SIGTERM) }
        if let main = service.mainPID {
            switch service.config.killMode {
            case .controlGroup: signalUnit(service, SIGTERM)
            case .process, .mixed: Processes.signal(main, SIGTERM)
            case .none: break
            }
        }
        guard service.mainPID != nil || service.controlPID != nil else { return finishStop(service, exit: .exited(0)) }
        setState(service, .stopping)
        armStopTimeout(service)
    }

    /// SIGKILL after TimeoutStopSec= unless the unit is down by then.
    func armStopTimeout(_ service: Service) {
        do throws(SystemCallError) {
            try armTimer(service, after: service.config.stopTimeout) { [unowned self] in
                guard service.state.active == .deactivating else { return }
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
        service.result = "timeout"
        if let control = service.controlPID { Processes.signal(control, SIGKILL) }
        if service.config.killMode == .process, let main = service.mainPID {
            Processes.signal(main, SIGKILL)
        } else {
            signalUnit(service, SIGKILL)
        }
        setState(service, .killing)
    }

    /// Spawns a helper command (not a unit) and calls `onExit` with how it ended and what it
    /// printed (the first 64 KiB of stdout, read once it has exited).
    public func spawnHelper(_ arguments: [String], onExit: @escaping (Processes.Exit, String) -> Void) throws(SystemCallError) {
        guard let program = arguments.first, let path = ExecCommand.resolve(program) else {
            throw SystemCallError("execve(\(arguments.first ?? ""))", .noSuchFileOrDirectory)
        }
        var ends: [CInt] = [-1, -1]
        _ = try systemCall("pipe2") { ferry_pipe_cloexec(&ends) }
        let reader = OwnedFD(adopting: ends[0])
        let readerFD = reader.release()
        do {
            let writer = OwnedFD(adopting: ends[1])
            let pid: pid_t
            do throws(SystemCallError) {
                pid = try Spawner.spawn(SpawnRequest(path: path, arguments: arguments,
                                                     environment: ["PATH=" + ExecCommand.searchPath.joined(separator: ":")],
                                                     standardIO: [-1, writer.rawValue, 2]))
            } catch {
                close(readerFD)
                throw error
            }
            helpers[pid] = { exit in
                let reader = OwnedFD(adopting: readerFD)
                _ = ferry_fcntl_int(reader.rawValue, F_SETFL, ferry_fcntl(reader.rawValue, F_GETFL) | O_NONBLOCK)
                var output: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while output.count < 65536, case .success(let count) = systemCallResult({ read(reader.rawValue, &chunk, chunk.count) }), count > 0 {
                    output += chunk[0..<count]
                }
                onExit(exit, String(decoding: output, as: UTF8.self))
            }
        }
    }

    // MARK: - Signals

    /// Signals every process of the unit: its cgroup when tracked, its process group, and a
    /// control process (which starts in a group of its own).
    func signalUnit(_ service: Service, _ signal: CInt) {
        controlGroups?.signal(service.name, signal)
        for group in [service.processGroup, service.controlPID].compactMap({ $0 }) where Processes.groupAlive(group) {
            Processes.signalGroup(group, signal)
        }
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
