import CFerry
import ControlServer
import FerryControl
import FerryJSON
import FerrySystem
import FoundationEssentials
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
    /// When `main` began (CLOCK_MONOTONIC µs).
    nonisolated(unsafe) static var mainEntered: UInt64 = 0
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
        host = Host.detect(upstream: UpstreamStore.detect(loop: loop, logger: logger))
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
        if host.managerAboveCarriesKexec {
            let underSystemd = host.kind == .systemd
            orchestrator.managerAbove = .init(name: underSystemd ? "systemd" : "the manager above",
                                              kexecCommand: options.kexecCommand ?? (underSystemd ? ["systemctl", "kexec", "--no-block"] : nil))
            logger.info("live update: \(orchestrator.managerAbove!.name) carries the stores and performs the kexec")
        } else {
            let readiness = LiveUpdateReadiness.check(backend)
            logger.log(level: readiness.ready ? .info : .notice, "live update: \(readiness.summary); kexec: \(readiness.kexec)")
        }
        observer = UpdateObserver(manager: manager, orchestrator: orchestrator, stateDirectory: options.stateDirectory,
                                  metricsFile: options.resolvedMetricsFile, logger: logger)
        let observe = ObserveInterface(observer: observer)
        interface = ManagerInterface(manager: manager, orchestrator: orchestrator, logger: logger)
        interface.otherInterfaces[ObserveInterface.interfaceName] = ObserveInterface.description
        interface.hostDescription = host.description
        control = try VarlinkServer(loop: loop, path: options.controlPath,
                                    adopting: state.map { OwnedFD(adopting: $0.controlFD) }, logger: logger) { [unowned self] call, peer, responder in
            if ObserveInterface.handles(call) { return observe.handle(call, responder: responder) }
            interface.handle(call, peer: peer, responder: responder)
        }
        interface.onReload = { [unowned self] in manager.units.reload() }
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
                if let state = report.updateState {
                    orchestrator.restoreFromManagerAbove(state: state, placed: report.placed)
                }
            }
            // A fresh start (never a re-exec): take back what the previous kernel carried, unless
            // the manager above carried it (it handed it back just now).
            if !host.managerAboveCarriesKexec { orchestrator.restoreAfterBoot() }
            // A cold start: what is enabled comes up, in dependency order (a restore above
            // already asked for it with the units that ran before).
            if orchestrator.lastRestoreReport?.found != true { manager.jobs.start([DependencyGraph.defaultTarget]) }
        }
        if Notifier.socketPath != nil { try? Notifier.ready(status: "\(manager.services.count) unit(s)") }
        if state == nil, let age = ProcessAge.milliseconds() {
            let own = (MonotonicClock.microseconds() - Self.mainEntered) / 1000
            logger.info("ready \(own) ms after main began, \(age) ms after the process was created (10 ms ticks: the parent's set-up before exec, the loader and the runtime included)")
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
            case SIGHUP: manager.units.reload()
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
        if getpid() == 1 { InitDuties.end(restart: reboot) }
        exit(0)
    }

    /// Replaces this process with a fresh ferryd binary, keeping sockets, store fds and children.
    private func reexecute() {
        reexecRequested = false
        let state = Reexec.State(version: 1, notifyFD: manager.notifySocketFD, controlFD: control.listenerFD,
                                 kexecCount: manager.kexecCount, units: manager.snapshot(), lockFD: lock.descriptor.rawValue,
                                 ferrydVersion: FerryVersion.current, lastRestore: orchestrator.lastRestoreReport)
        let keep = [manager.notifySocketFD, control.listenerFD, lock.descriptor.rawValue] + manager.storeDescriptors()
        logger.info("re-executing with \(manager.services.count) unit(s) and \(keep.count - 2) stored fd(s)")
        if let error = Reexec.execute(state, keeping: keep, program: reexecProgram) {
            logger.error("re-exec failed, carrying on in this process: \(error)")
        }
    }
}
