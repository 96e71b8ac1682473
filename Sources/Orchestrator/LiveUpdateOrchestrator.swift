import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor

/// What `ferryctl kexec` asks for.
public struct KexecRequest: Sendable, Codable {
    public var kernel: String?
    public var initrd: String?
    public var commandLine: String?
    public var reuseCommandLine: Bool
    /// Use the emulator's simulated kexec and start ferryd again instead of rebooting.
    public var rehearse: Bool
    /// The kexec is already under way (someone ran `systemctl kexec`): prepare and hold, ask nobody.
    public var handedOver: Bool = false
    /// Abort (and roll back) if any stored fd of any unit would be lost.
    public var requireAll: Bool = false

    public init(kernel: String? = nil, initrd: String? = nil, commandLine: String? = nil, reuseCommandLine: Bool = false,
                rehearse: Bool = false) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.reuseCommandLine = reuseCommandLine
        self.rehearse = rehearse
    }
}

/// How a live update ended, as far as the one who asked for it can hear.
public enum LiveUpdateOutcome {
    /// A rehearsal is past the simulated kexec and this ferryd is about to be replaced by a fresh
    /// one. (A real kexec announces nothing: the machine is gone, or `.rolledBack` follows.)
    case handingOver(LiveUpdateReport)
    /// Refused before anything changed (no kernel loaded, no emulator for a rehearsal).
    case refused(LiveUpdateReport)
    /// Failed after units were stopped: they were started again with their stores.
    case rolledBack(LiveUpdateReport)
}

/// ferryd's live updates: one at a time, each a `LiveUpdateFlow`; and the restore after boot
/// (`LiveUpdateRestore.swift`).
///
/// Confined to the event-loop thread, like the Manager it drives.
public final class LiveUpdateOrchestrator {
    public let manager: Manager
    public let backend: any LiveUpdateBackend
    /// Ferry's own session; stored sessions of this name are refused (namespace guard).
    public let sessionName: String
    let logger: Logger
    var lastRestoreStorage: RestoreReport? {
        didSet { if let lastRestoreStorage { onRestoreReport?(lastRestoreStorage) } }
    }
    /// Told of every update's end that this process sees (refused, rolled back, handing over).
    public var onOutcome: ((LiveUpdateOutcome) -> Void)?
    /// Told when the restore report of this boot is made, and again as each unit becomes ready.
    public var onRestoreReport: ((RestoreReport) -> Void)?
    /// Extra state that rides the mapping's `state.ferry` as `history` (the update history, for
    /// hosts whose disk does not survive the kexec).
    public var carriedAlong: (() -> JSONValue)?
    /// What the previous boot's `carriedAlong` gave, once the restore has read the mapping.
    public internal(set) var carriedFromPreviousBoot: JSONValue?
    /// The update under way, if any.
    private var current: LiveUpdateFlow?
    /// How ferryd leaves its kernel when it preserves the stores itself.
    public enum OwnHandOver: Sendable {
        /// PID 1, or no manager that kexecs: ferryd ends every process and calls reboot(KEXEC).
        case reboot
        /// Under systemd older than 261: systemd's shutdown performs the kexec, and ferryd holds
        /// its sessions through it (it survives the final kill: `@` argv[0], SurviveFinalKillSignal=).
        case systemdShutdown
    }

    public var ownHandOver = OwnHandOver.reboot

    /// Set when the manager above carries the stores across a kexec (they are pushed to it):
    /// ferryd then preserves nothing itself and never holds /dev/liveupdate.
    public var managerAbove: ManagerAbove?

    /// The manager above that carries ferryd's stores, and how to ask it for a kexec.
    public struct ManagerAbove: Sendable {
        public var name: String
        /// Run to ask for the kexec (e.g. `systemctl kexec --no-block`); nil: ferryd cannot ask.
        public var kexecCommand: [String]?
        public init(name: String, kexecCommand: [String]?) {
            self.name = name
            self.kexecCommand = kexecCommand
        }
    }

    public init(manager: Manager, backend: any LiveUpdateBackend, sessionName: String = "ferry", logger: Logger) {
        self.manager = manager
        self.backend = backend
        self.sessionName = sessionName
        self.logger = logger
        manager.observeStates { [unowned self] service in current?.unitChanged(service) }
        manager.onPrepareAnswer = { [unowned self] service, answer in
            if let current { current.prepareAnswer(answer, from: service) } else {
                logger.debug("\(service.name): prepare answer with no live update under way, ignored")
            }
        }
    }

    /// The phase of the update under way, nil when none is.
    public var phase: LiveUpdateFlow.Phase? { current?.phase }

    public struct Busy: Error {
        public let phase: LiveUpdateFlow.Phase
    }

    /// Starts a live update and returns at once; the event loop carries it on. `outcome` is
    /// called once, unless the machine leaves this kernel first.
    ///
    /// - Throws: `Busy` when another update is under way.
    public func begin(_ request: KexecRequest, outcome: @escaping (LiveUpdateOutcome) -> Void) throws(Busy) {
        if let current { throw Busy(phase: current.phase) }
        let flow = LiveUpdateFlow(request: request, orchestrator: self) { [unowned self] result in
            if case .handingOver = result {} else { current = nil }
            onOutcome?(result)
            outcome(result)
        }
        current = flow
        flow.start()
    }
}
