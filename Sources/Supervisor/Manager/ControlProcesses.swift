import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// ExecStartPre=, ExecStartPost= and ExecStop=: commands run one after another beside (or before)
/// the main process. A failing one (without the `-` prefix) fails the start; ExecStop= failures
/// are logged and the stop goes on.
extension ProcessLifecycle {
    func runControl(_ service: Service, _ step: Service.ControlStep, _ commands: [ExecCommand]) {
        service.controlStep = step
        service.controlQueue = commands
        runNextControl(service)
    }

    private func runNextControl(_ service: Service) {
        guard let step = service.controlStep else { return }
        guard !service.controlQueue.isEmpty else { return controlStepDone(service, step) }
        let command = service.controlQueue.removeFirst()
        guard let pid = spawn(command, for: service, handingStore: false) else {
            return controlFailed(service, step, reason: "could not spawn \(command.path)")
        }
        service.controlPID = pid
        controlByPID[pid] = service
        currentControlCommand[pid] = command
    }

    func controlExited(_ service: Service, _ exit: Processes.Exit) {
        guard let pid = service.controlPID else { return }
        service.controlPID = nil
        let command = currentControlCommand.removeValue(forKey: pid)
        guard let step = service.controlStep else {
            // The unit was stopped while this ran: the stop waits for every process.
            if service.stopRequested && service.mainPID == nil { stopProcessesDone(service) }
            return
        }
        if service.stopRequested && step != .stop {
            // A stop interrupted the start: nothing more runs.
            service.controlStep = nil
            service.controlQueue = []
            if service.mainPID == nil { stopProcessesDone(service) }
            return
        }
        guard exit.isSuccess || command?.ignoreFailure == true else {
            return controlFailed(service, step, reason: "\(command?.path ?? "control process") \(exit)")
        }
        runNextControl(service)
    }

    private func controlStepDone(_ service: Service, _ step: Service.ControlStep) {
        service.controlStep = nil
        switch step {
        case .startPre:
            if !launch(service) { enterFinal(service, failed: true) }
        case .startPost:
            becomeActive(service)
        case .stop:
            // ExecStop= is done; what is left of the unit gets SIGTERM.
            terminate(service)
        }
    }

    private func controlFailed(_ service: Service, _ step: Service.ControlStep, reason: String) {
        let key = step == .startPre ? "ExecStartPre" : step == .startPost ? "ExecStartPost" : "ExecStop"
        logger.warning("\(service.name): \(key)= failed: \(reason)")
        service.controlStep = nil
        service.controlQueue = []
        if step == .stop { return terminate(service) }
        if service.result == "success" { service.result = "exit-code" }
        if service.mainPID != nil {
            stopProcesses(service)
        } else {
            enterFinal(service, failed: true)
        }
    }

    /// A stop of a unit whose main process had already gone once its control process is gone too.
    private func stopProcessesDone(_ service: Service) {
        terminate(service)
    }
}
