import FDStore
import FerrySystem
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

extension Manager {
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

    private func spawnRequest(for service: Service, command: ExecCommand) throws(ParseError) -> SpawnRequest {
        var environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + extraEnvironment
        for (key, value) in try service.config.resolvedEnvironment() {
            environment.removeAll { $0.hasPrefix(key + "=") }
            environment.append("\(key)=\(value)")
        }
        let passNotify = service.config.notifyAccess != .none || service.config.type == .notify
        if passNotify {
            environment.append("NOTIFY_SOCKET=\(notifySocketPath)")
            if service.config.fdStoreMax > 0 { environment.append("FDSTORE=\(service.config.fdStoreMax)") }
        }
        var listen: [CInt] = []
        if !service.store.isEmpty {
            listen = service.store.entries.map(\.fd)
            environment.append("LISTEN_FDS=\(listen.count)")
            environment.append("LISTEN_FDNAMES=" + service.store.entries.map(\.name).joined(separator: ":"))
        }
        var identity: (uid: uid_t, gid: gid_t, groups: [gid_t])? = nil
        if service.config.user != nil || service.config.group != nil {
            identity = try Accounts.resolve(user: service.config.user, group: service.config.group)
        }
        if !listen.isEmpty { environment.append("LISTEN_PID=0") }  // for expansion only; the child writes its own
        let variables = Dictionary(environment.compactMap { entry -> (String, String)? in
            guard let equals = entry.firstIndex(of: "=") else { return nil }
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }, uniquingKeysWith: { _, last in last })
        environment.removeAll { $0 == "LISTEN_PID=0" }
        return SpawnRequest(path: command.path, arguments: command.expandedArguments(variables), environment: environment,
                            listenDescriptors: listen, setListenPID: !listen.isEmpty, standardIO: [-1, 2, 2],
                            workingDirectory: service.config.workingDirectory, identity: identity)
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
        armTimer(service, after: service.config.stopTimeout) { [unowned self] in
            guard service.state == .stopping, let group = service.processGroup else { return }
            logger.warning("\(service.name): did not stop within TimeoutStopSec=\(service.config.stopTimeout), killing")
            service.result = "timeout"
            signalUnit(service, group: group, SIGKILL)
            setState(service, .killing)
        }
    }

    // MARK: - Exits

    /// Reaps every exited child; called on SIGCHLD.
    public func reapChildren() {
        while let (pid, exit) = Processes.reapAny() {
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
        if service.config.fdStorePreserve == .no { release(service.store.removeAll()) }
        setState(service, .autoRestart)
        service.restarts += 1
        armTimer(service, after: service.config.restartDelay) { [unowned self] in
            guard service.state.sub == .autoRestart else { return }
            do throws(ManagerError) {
                try start(service)
            } catch {
                logger.warning("\(service.name): restart failed: \(error.message)")
            }
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
            release(service.store.removeAll())
        }
        if failed {
            setState(service, .failed)
        } else {
            setState(service, preserve.outlivesProcess && !service.store.isEmpty ? .pinned : .dead)
        }
    }

    /// clean: empties the store of a unit at rest (EBUSY otherwise).
    public func clean(_ service: Service) throws(ManagerError) {
        guard service.state.isAtRest else {
            throw ManagerError(code: .unitBusy, unit: service.name.full, message: "cannot clean while \(service.state)")
        }
        release(service.store.removeAll())
        if service.state == .pinned { setState(service, .dead) }
    }

    /// Signals every process of the unit: its cgroup when tracked, and its process group.
    func signalUnit(_ service: Service, group: pid_t, _ signal: CInt) {
        controlGroups?.signal(service.name, signal)
        if Processes.groupAlive(group) { Processes.signalGroup(group, signal) }
    }

    // MARK: - Timers

    func armTimer(_ service: Service, after delay: Duration, _ action: @escaping () -> Void) {
        cancelTimer(service)
        guard let timer = try? TimerFD() else { return }
        let fd = timer.descriptor.rawValue
        timer.arm(after: delay)
        service.timer = consume timer
        try? loop.watch(fd, for: .readable) { [unowned self] _ in
            cancelTimer(service)
            action()
        }
    }

    func cancelTimer(_ service: Service) {
        if let fd = service.timer?.descriptor.rawValue { loop.unwatch(fd) }
        service.timer = nil
    }
}

/// User= and Group= to ids.
enum Accounts {
    static func resolve(user: String?, group: String?) throws(ParseError) -> (uid: uid_t, gid: gid_t, groups: [gid_t]) {
        var uid: uid_t = 0
        var gid: gid_t = 0
        var name: String?
        if let user {
            if let number = UInt32(user) {
                uid = number
            } else {
                guard let entry = getpwnam(user) else { throw ParseError("User=\(user) does not exist") }
                uid = entry.pointee.pw_uid
                gid = entry.pointee.pw_gid
                name = user
            }
        }
        if let group {
            if let number = UInt32(group) {
                gid = number
            } else {
                guard let entry = getgrnam(group) else { throw ParseError("Group=\(group) does not exist") }
                gid = entry.pointee.gr_gid
            }
        }
        var groups: [gid_t] = [gid]
        if let name {
            var count: CInt = 64
            var list = [gid_t](repeating: 0, count: 64)
            if getgrouplist(name, gid, &list, &count) >= 0 { groups = Array(list.prefix(Int(count))) }
        }
        return (uid, gid, groups)
    }
}
