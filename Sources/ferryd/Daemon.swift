import Broker
import CFerry
import ControlServer
import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Orchestrator
import Observability
import ServiceKit
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// ferryd's wiring: the loop, the signalfd, the manager, the control server, and re-exec.
final class Daemon {
    let options: DaemonOptions
    let loop: EventLoop
    let logger: Logger
    let signals: OwnedFD
    let manager: Manager
    var control: VarlinkServer!
    var interface: ManagerInterface!
    let orchestrator: LiveUpdateOrchestrator
    let host: Host
    /// Held for the daemon's life: one ferryd per runtime directory.
    let lock: RuntimeLock
    let observer: UpdateObserver
    let broker: SessionBroker
    let unitSessions: UnitSessions
    var brokerServer: BrokerServer!
    private var reexecRequested = false
    private var reexecProgram: String?

    init(options: DaemonOptions) throws {
        self.options = options
        LoggingSystem.bootstrap { label in
            DaemonLogHandler(label: label, level: Logger.Level(rawValue: options.logLevel) ?? .info)
        }
        logger = Logger(label: "ferryd")
        ResourceLimits.raiseDescriptorLimit()
        logger.debug("log lines carry syslog priority prefixes: \(DaemonLogHandler.stderrIsJournal() ? "yes, stderr is the journal" : "no")")
        Processes.becomeSubreaper()
        if getpid() == 1 { InitDuties.mountEssentials() }
        mkdir(options.runtimeDirectory, 0o755)
        mkdir("\(options.runtimeDirectory)/system", 0o755)
        loop = try EventLoop()
        signals = try SignalFD.open([SIGCHLD, SIGTERM, SIGINT, SIGHUP])

        let state = Reexec.takeState()
        if let fd = state?.lockFD {
            lock = RuntimeLock.adopt(fd)
        } else {
            lock = try RuntimeLock.acquire(in: options.runtimeDirectory)
        }
        // What the manager above handed back; taken first, so no child can inherit it.
        let handedBack = state == nil ? ListenedDescriptors.take() : ListenedDescriptors.none
        manager = try Manager(loop: loop, loader: UnitLoader(directories: options.directories),
                              notifySocketPath: options.notifyPath, logger: logger,
                              adoptingNotifySocket: state.map { OwnedFD(adopting: $0.notifyFD) })
        host = Host.detect(upstream: UpstreamStore.detect(loop: loop, logger: logger),
                           aboveCarriesKexec: options.managerAboveKexec)
        manager.stores.upstream = host.upstream
        logger.info("host: \(host.description)")
        manager.processes.controlGroups = ControlGroups.detect()
        logger.info("process tracking: \(manager.processes.controlGroups.map { "cgroup v2 under \($0.root)" } ?? "process groups (no writable cgroup v2)")")
        // Services write to ferryd's stderr: where that is the journal, they may say priorities too.
        if let stream = DaemonLogHandler.journalStream() {
            manager.processes.extraEnvironment.append("JOURNAL_STREAM=\(stream)")
        }
        let backend: any LiveUpdateBackend
        if let emulator = options.emulator ?? getenv(EmulatorWire.environmentVariable).map({ String(cString: $0) }) {
            backend = EmulatorBackend(socketPath: emulator)
            manager.processes.extraEnvironment += ["\(EmulatorWire.environmentVariable)=\(emulator)"]
        } else {
            backend = KernelBackend()
        }
        orchestrator = LiveUpdateOrchestrator(manager: manager, backend: backend, sessionName: options.sessionName,
                                              logger: logger)
        if host.kind == .systemd && !host.managerAboveCarriesKexec { orchestrator.ownHandOver = .systemdShutdown }
        // Where ferryd does the LUO work itself and its death is not the host's: a keeper holds
        // copies through every live update and restore (docs/architecture.md, "Crash windows").
        // Not where a manager above keeps ferryd's store: it holds those copies already (each
        // store entry, each retrieved session), and it would end a keeper with ferryd's cgroup.
        if !host.managerAboveCarriesKexec && host.upstream == nil && getpid() != 1 {
            orchestrator.keeperConfiguration = .init(executable: Reexec.executablePath,
                                                     socketPath: "\(options.runtimeDirectory)/keeper")
        }
        if host.managerAboveCarriesKexec {
            let underSystemd = host.kind == .systemd
            orchestrator.managerAbove = .init(name: underSystemd ? "systemd" : "the manager above",
                                              kexecCommand: options.kexecCommand ?? (underSystemd ? ["systemctl", "kexec", "--no-block"] : nil))
            logger.info("live update: \(orchestrator.managerAbove!.name) carries the stores and performs the kexec")
        } else {
            let readiness = LiveUpdateReadiness.check(backend)
            logger.log(level: readiness.ready ? .info : .notice, "live update: \(readiness.summary); kexec: \(readiness.kexec)")
        }
        let (policy, policyWarnings) = BrokerPolicy.load(path: options.brokerPolicy)
        for warning in policyWarnings { logger.warning("broker policy: \(warning)") }
        broker = SessionBroker(backend: backend, policy: policy, logger: logger)
        unitSessions = UnitSessions(manager: manager, backend: backend, logger: logger)
        orchestrator.carriedSessions = { [unowned broker] in broker.carried() }
        broker.changesRefused = { [unowned orchestrator] in
            orchestrator.phase.map { "a live update is in progress (phase \($0.rawValue)); ask again after it" }
        }
        // Where the manager above performs the kexec, it carries the held sessions too.
        orchestrator.pushSessionsAbove = { [unowned broker] upstream in
            broker.heldDescriptors.compactMap { held in
                do throws(SystemCallError) {
                    try upstream.pushBrokerSession(held.fd, kernelName: held.kernelName)
                    return nil
                } catch {
                    return "broker: session '\(held.kernelName)' could not be handed to the manager above (\(error)); lost across the kexec"
                }
            }
        }
        orchestrator.sessionsAboveDropped = { [unowned broker] upstream in
            for held in broker.heldDescriptors { upstream.dropBrokerSession(kernelName: held.kernelName) }
        }
        observer = UpdateObserver(manager: manager, orchestrator: orchestrator, stateDirectory: options.stateDirectory,
                                  metricsFile: options.resolvedMetricsFile, logger: logger)
        let observe = ObserveInterface(observer: observer)
        interface = ManagerInterface(manager: manager, orchestrator: orchestrator, logger: logger)
        interface.otherInterfaces[ObserveInterface.interfaceName] = ObserveInterface.description
        interface.hostDescription = host.description
        interface.statusParts["broker"] = { [unowned broker] in broker.statusReport() }
        brokerServer = try BrokerServer(loop: loop, path: options.brokerPath, broker: broker, logger: logger,
                                        adopting: state?.brokerFD.map { OwnedFD(adopting: $0) })
        if let table = state?.broker {
            broker.adoptReexecSnapshot(table)
            broker.armUnclaimedTimer(on: loop)
        }
        logger.info("broker: io.ferry.Broker on \(options.brokerPath), policy \(policy.source), \(policy.rules.count) rule(s)")
        brokerServer.unitOf = { [unowned manager] pid in manager.unit(ofProcess: pid)?.full }
        manager.processes.extraEnvironment.append("\(BrokerProtocol.environmentVariable)=\(options.brokerPath)")
        control = try VarlinkServer(loop: loop, path: options.controlPath,
                                    adopting: state.map { OwnedFD(adopting: $0.controlFD) }, logger: logger) { [unowned self] call, peer, responder in
            if ObserveInterface.handles(call) { return observe.handle(call, responder: responder) }
            interface.handle(call, peer: peer, responder: responder)
        }
        interface.onReload = { [unowned self] in
            manager.units.reload()
            reloadBrokerPolicy()
        }
        interface.onReexecute = { [unowned self] program in
            reexecRequested = true
            reexecProgram = program
        }
        try loop.watch(signals.rawValue, for: .readable) { [unowned self] _ in handleSignals() }

        if let state {
            manager.kexecCount = state.kexecCount
            manager.restore(state.units)
            manager.units.loadAll()
            if let report = state.lastRestore { orchestrator.adoptRestoreReport(report) }
            logger.info("re-executed \(state.ferrydVersion ?? "?") → \(FerryVersion.current) (\(Reexec.executablePath)): \(state.units.count) unit(s) taken over")
            manager.processes.reapChildren()
        } else {
            manager.units.loadAll()
            logger.info("ferryd \(FerryVersion.current) started: \(manager.services.count) unit(s), control \(options.controlPath), notify \(options.notifyPath)")
            if let upstream = host.upstream {
                let names = handedBack.names
                let report = manager.stores.takeBack(names: names, descriptors: handedBack.takeAll(), from: upstream)
                for problem in report.problems { logger.warning("taking back stores: \(problem)") }
                if !names.isEmpty { logger.info("took back \(report.restored) stored fd(s) from the manager above") }
                if host.managerAboveCarriesKexec {
                    for (name, fd) in report.incomingSessions {
                        logger.warning("taking back stores: \(UpstreamStore.incomingSessionPrefix)\(name) is of no use where the manager above carries the kexec; dropped")
                        close(fd)
                    }
                    upstream.dropIncomingSessions()
                } else {
                    orchestrator.adoptIncomingSessionsHeldAbove(report.incomingSessions)
                }
                if let state = report.updateState {
                    orchestrator.restoreFromManagerAbove(state: state, placed: report.placed)
                }
                let sameBoot = report.updateState.flatMap { JSONValue.parse($0)?["bootID"]?.string } == LiveUpdateOrchestrator.bootID()
                broker.adoptCarried(orchestrator.carriedSessionsFromPreviousBoot, handedBack: report.brokerSessions, sameBoot: sameBoot)
                broker.armUnclaimedTimer(on: loop)
            }
            // A fresh start (never a re-exec): take back what the previous kernel carried, unless
            // the manager above carried it (it handed it back just now).
            if !host.managerAboveCarriesKexec {
                // A keeper left by a ferryd that died in the middle of an update comes first.
                if !orchestrator.resumeFromKeeper() { orchestrator.restoreAfterBoot() }
                orchestrator.forgetResumedSessions()
                broker.adoptCarried(orchestrator.carriedSessionsFromPreviousBoot)
                broker.armUnclaimedTimer(on: loop)
            }
            // A cold start: what is enabled comes up, in dependency order (a restore above
            // already asked for it with the units that ran before).
            if orchestrator.lastRestoreReport?.found != true { manager.jobs.start([DependencyGraph.defaultTarget]) }
        }
        if Notifier.socketPath != nil { try? Notifier.ready(status: "\(manager.services.count) unit(s)") }
        if state == nil, let age = ProcessAge.milliseconds() {
            logger.info("ready \(ProcessAge.millisecondsSinceMain()) ms after main began, \(age) ms after the process was created (10 ms ticks: the parent's set-up before exec, the loader and the runtime included)")
        }
    }

    func run() throws {
        while true {
            try loop.runOnce(timeoutMilliseconds: -1)
            if reexecRequested { reexecute() }
        }
    }

    private func handleSignals() {
        for signal in SignalFD.drain(signals.borrowed) {
            switch signal {
            case SIGCHLD: manager.processes.reapChildren()
            case SIGHUP:
                manager.units.reload()
                reloadBrokerPolicy()
            case SIGTERM where orchestrator.phase == .handOver && orchestrator.managerAbove == nil:
                // Holding the live update's sessions until the kernel switches: leaving now would drop them.
                // (When the manager above carries the stores, ferryd holds nothing it could drop: it
                // may leave, and the manager above need not wait out its stop timeout.)
                logger.notice("SIGTERM ignored: holding the live update's LUO sessions until the kexec")
            case SIGTERM: shutdown(reboot: false)
            case SIGINT: shutdown(reboot: true)
            default: break
            }
        }
    }

    /// daemon-reload and SIGHUP read the broker's policy again; sessions already held stay.
    private func reloadBrokerPolicy() {
        let (policy, warnings) = BrokerPolicy.load(path: options.brokerPolicy)
        for warning in warnings { logger.warning("broker policy: \(warning)") }
        if policy != broker.policy { logger.info("broker: policy reloaded from \(policy.source), \(policy.rules.count) rule(s)") }
        broker.policy = policy
    }

    /// Stops every running service, then exits (stores are not kept past ferryd's life). As PID 1
    /// it powers the machine off (SIGTERM) or restarts it (SIGINT, as for ctrl-alt-del).
    private func shutdown(reboot: Bool) {
        logger.info("shutting down: stopping \(manager.services.values.filter { $0.mainPID != nil }.count) service(s)")
        manager.jobs.stop(manager.services.keys.map(\.full).sorted())
        let deadline = MonotonicClock.now() + .seconds(10)
        while manager.services.values.contains(where: { $0.mainPID != nil }) && MonotonicClock.now() < deadline {
            try? loop.runOnce(timeoutMilliseconds: 100)
            manager.processes.reapChildren()
        }
        for service in manager.services.values {
            if let group = service.processGroup, service.mainPID != nil { Processes.signalGroup(group, SIGKILL) }
        }
        unlink(options.controlPath)
        unlink(options.notifyPath)
        unlink(options.brokerPath)
        // Stopped on purpose, the stores end with ferryd; but an update that was under way is
        // the keeper's to finish: the next ferryd rolls it back or restores.
        if let phase = orchestrator.phase {
            logger.notice("live update in phase \(phase.rawValue): the keeper keeps its copies for the next ferryd")
        } else {
            orchestrator.releaseKeeperNow()
        }
        if getpid() == 1 { InitDuties.end(restart: reboot) }
        exit(0)
    }

    /// Replaces this process with a fresh ferryd binary, keeping sockets, store fds and children.
    private func reexecute() {
        reexecRequested = false
        orchestrator.releaseKeeperNow()
        var state = Reexec.State(version: 1, notifyFD: manager.notifySocketFD, controlFD: control.listenerFD,
                                 kexecCount: manager.kexecCount, units: manager.snapshot(), lockFD: lock.descriptor.rawValue,
                                 ferrydVersion: FerryVersion.current, lastRestore: orchestrator.lastRestoreReport)
        let table = broker.reexecSnapshot()
        state.brokerFD = brokerServer.listenerFD
        state.broker = table.text
        let keep = [manager.notifySocketFD, control.listenerFD, lock.descriptor.rawValue, brokerServer.listenerFD]
            + manager.storeDescriptors() + table.descriptors
        logger.info("re-executing with \(manager.services.count) unit(s), \(manager.storeDescriptors().count) stored fd(s) and \(table.descriptors.count) brokered session(s)")
        if let error = Reexec.execute(state, keeping: keep, program: reexecProgram) {
            logger.error("re-exec failed, carrying on in this process: \(error)")
        }
    }
}
