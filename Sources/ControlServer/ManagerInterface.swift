import FDStore
import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdateReports
import LiveUpdate
import Logging
import Orchestrator
import Supervisor

/// ferryd's Varlink interface `io.ferry.Manager`, bound to the Manager.
///
/// Reads are open to every caller; calls that change anything need uid 0 (SO_PEERCRED).
public final class ManagerInterface {
    public static let interfaceName = "io.ferry.Manager"
    public static let description = """
        interface io.ferry.Manager

        type Unit (name: string, description: string, load: string, active: string, sub: string, result: string,
                   mainPID: ?int, status: ?string, errno: ?int, restarts: int, fdStoreCount: int,
                   fdStoreMax: int, preserve: string, path: ?string, enabled: bool, failure: ?string)
        type StoredFD (name: string, type: string, inode: int, path: string, size: ?int, sessionName: ?string)

        # What carries a live update here: the kernel (ready, or unavailable and why) or the emulator,
        # and whether a kernel is loaded for kexec.
        type LiveUpdateReadiness (backend: string, emulatorSocket: ?string, ready: bool, summary: string,
                                  kexecLoaded: ?bool, kexec: string, kernelRelease: ?string)

        method GetManager() -> (version: string, units: int, kexecCount: int, notifyMessages: int, storedFDs: int,
                                previousShutdown: object, liveUpdatePhase: ?string, host: string,
                                upstreamStoredFDs: ?int, liveUpdate: LiveUpdateReadiness)
        method ListUnits() -> (units: []Unit)
        method GetUnit(name: string) -> (unit: Unit)
        method StartUnit(name: string, noBlock: ?bool) -> (unit: Unit)
        method StopUnit(name: string) -> (unit: Unit)
        method RestartUnit(name: string) -> (unit: Unit)
        # Entries in the order the service stored them.
        method ListFDStore(name: string) -> (unit: string, entries: []StoredFD)
        # The last lines the unit wrote to stdout or stderr (50 unless `lines` says).
        method GetUnitLogs(name: string, lines: ?int) -> (unit: string, lines: []string)
        method CleanUnit(name: string) -> (unit: Unit)
        # [Install]: link the unit into the .wants/ and .requires/ folders of its WantedBy=/RequiredBy= targets.
        method EnableUnit(name: string) -> (unit: string, links: []string)
        method DisableUnit(name: string) -> (unit: string, links: []string)
        method Reload() -> ()
        # Executes the ferryd at the path it was started from (an upgrade), or `program`.
        method Reexecute(program: ?string) -> ()
        # Live update: stop, preserve every store (FileDescriptorStorePreserve=yes|on-success) in
        # Ferry's LUO session, kexec. A failure before the reboot rolls everything back.
        # handedOver: the kexec is already under way (systemctl kexec): prepare, hold, ask nobody.
        method Kexec(kernel: ?string, initrd: ?string, commandLine: ?string, reuseCommandLine: ?bool,
                     rehearse: ?bool, handedOver: ?bool, requireAll: ?bool) -> (report: object)
        method GetLiveUpdate() -> (restore: ?object, kexecCount: int)
        # What a live update would carry now, without doing it: each fd's fate (tried in a scratch
        # session where the backend allows), pinned memory, the target kernel, go or no-go.
        method Preflight(kernel: ?string, initrd: ?string, commandLine: ?string, reuseCommandLine: ?bool,
                         rehearse: ?bool, requireAll: ?bool) -> (preflight: object)

        error NoSuchUnit (name: string)
        error InvalidUnitName (name: string)
        error UnitBusy (name: string, state: string)
        # `reason` is the unit's result (exec, resources, timeout, …); `detail` what failed, when known.
        error StartFailed (name: string, reason: string, detail: ?string)
        error PermissionDenied (method: string)
        error LiveUpdateFailed (report: object)
        # A live update is under way: changes wait until it hands over or rolls back.
        error LiveUpdateInProgress (phase: string)
        """

    public struct UnitSummary: Codable, Sendable {
        public var name: String
        public var description: String
        public var load: String
        public var active: String
        public var sub: String
        public var result: String
        public var mainPID: Int32?
        public var status: String?
        public var errno: Int32?
        public var restarts: Int
        public var fdStoreCount: Int
        public var fdStoreMax: Int
        public var preserve: String
        public var path: String?
        /// Linked into a target's .wants/ or .requires/ folder.
        public var enabled: Bool
        /// Why the last start could not run a program (e.g. ENOENT).
        public var failure: String?

        init(_ service: Service, enabled: Bool) {
            self.enabled = enabled
            name = service.name.full
            description = service.config.description
            load = service.loadState
            active = service.state.active.rawValue
            sub = service.state.sub.rawValue
            result = service.result
            mainPID = service.mainPID
            status = service.statusText
            errno = service.statusErrno
            restarts = service.restarts
            fdStoreCount = service.store.count
            fdStoreMax = service.store.limit
            preserve = service.config.fdStorePreserve.rawValue
            path = service.path
            failure = service.startFailure
        }
    }

    let manager: Manager
    let orchestrator: LiveUpdateOrchestrator
    let logger: Logger
    /// Start/stop callers waiting for the unit to settle.
    private var waiting: [(unit: UnitName, starting: Bool, responder: VarlinkServer.Responder)] = []
    private var readiness: (at: Duration, value: JSONValue)?
    /// Where ferryd runs and who carries its stores across a kexec (GetManager's `host`).
    public var hostDescription = ""
    /// Parts that sit beside the manager and report in GetManager under their own key (the
    /// broker's sessions as `broker`).
    public var statusParts: [String: () -> JSONValue] = [:]
    /// Other interfaces ferryd serves on the same socket (name → description), for introspection.
    public var otherInterfaces: [String: String] = [:]
    /// Set by Reload/Reexecute; ferryd acts on them after answering.
    public var onReload: () -> Void = {}
    /// Called with the program to execute (nil: the path ferryd was started from).
    public var onReexecute: (String?) -> Void = { _ in }

    public init(manager: Manager, orchestrator: LiveUpdateOrchestrator, logger: Logger) {
        self.manager = manager
        self.orchestrator = orchestrator
        self.logger = logger
        manager.observeStates { [unowned self] service in settle(service) }
    }

    /// The handler to give a VarlinkServer.
    public func handle(_ call: Varlink.Call, peer: VarlinkServer.Peer, responder: VarlinkServer.Responder) {
        let (interface, method) = split(call.method)
        if interface == "org.varlink.service" {
            responder.reply(service(method, call))
            return
        }
        guard interface == Self.interfaceName else {
            responder.reply(.failure("org.varlink.service.InterfaceNotFound", ["interface": .string(interface)]))
            return
        }
        let changes = ["StartUnit", "StopUnit", "RestartUnit", "CleanUnit", "EnableUnit", "DisableUnit", "Reload", "Reexecute", "Kexec"]
        if let wrong = Self.mistypedParameter(call) {
            responder.reply(.failure("org.varlink.service.InvalidParameter", ["parameter": .string(wrong)]))
            return
        }
        if changes.contains(method) && !peer.isRoot {
            logger.notice("refused \(call.method) from uid \(peer.uid) pid \(peer.pid): needs root")
            responder.reply(.failure("\(Self.interfaceName).PermissionDenied", ["method": .string(call.method)]))
            return
        }
        // (A kexec already under way is answered by `liveUpdate`: ferry-kexec.service, during a
        // kexec that ferryd itself asked for, hears that the stores are being handed over.)
        let handedOverKexec = method == "Kexec" && call.parameters["handedOver"]?.bool == true
        if changes.contains(method), let phase = orchestrator.phase, !handedOverKexec {
            // The update owns the units until it hands over or rolls back.
            responder.reply(.failure("\(Self.interfaceName).LiveUpdateInProgress", ["phase": .string(phase.rawValue)]))
            return
        }
        switch method {
        case "GetManager":
            var parameters: [String: JSONValue] = [
                "version": .string(FerryVersion.current), "units": .number(Double(manager.services.count)),
                "kexecCount": .number(Double(manager.kexecCount)),
                "notifyMessages": .number(Double(manager.notifyMessages)),
                "storedFDs": .number(Double(manager.services.values.reduce(0) { $0 + $1.store.count })),
                "previousShutdown": JSONValue.from(orchestrator.lastRestoreReport?.previousShutdown ?? [:]),
                "liveUpdatePhase": orchestrator.phase.map { .string($0.rawValue) } ?? .null,
                "host": .string(hostDescription),
                "upstreamStoredFDs": manager.stores.upstream.map { .number(Double($0.count)) } ?? .null,
                "liveUpdate": liveUpdateReadiness(),
            ]
            for (key, part) in statusParts { parameters[key] = part() }
            responder.reply(Varlink.Reply(parameters: parameters))
        case "ListUnits":
            manager.units.loadAll()
            let units = manager.services.values.sorted { $0.name < $1.name }.map { JSONValue.from(UnitSummary($0, enabled: manager.units.isEnabled($0.name))) }
            responder.reply(Varlink.Reply(parameters: ["units": .array(units)]))
        case "GetUnit": withUnit(call, responder, reading: true) { service in responder.reply(unitReply(service)) }
        case "StartUnit": withUnit(call, responder) { service in
            start(service, noBlock: call.parameters["noBlock"]?.bool ?? false, responder)
        }
        case "StopUnit": withUnit(call, responder) { service in
            manager.jobs.stop([service.name.full]) { [unowned self] _, _ in responder.reply(unitReply(service)) }
        }
        case "GetUnitLogs": withUnit(call, responder, reading: true) { service in
            let count = call.parameters["lines"]?.number.map { max(0, Int($0)) } ?? 50
            let lines = manager.output.lines(of: service.name, count: count).map { JSONValue.string($0) }
            responder.reply(Varlink.Reply(parameters: ["unit": .string(service.name.full), "lines": .array(lines)]))
        }
        case "EnableUnit", "DisableUnit": withUnit(call, responder) { service in
            do throws(ManagerError) {
                let links = method == "EnableUnit" ? try manager.units.enable(service.name) : manager.units.disable(service.name)
                responder.reply(Varlink.Reply(parameters: ["unit": .string(service.name.full), "links": .array(links.map { .string($0) })]))
            } catch {
                responder.reply(failure(error))
            }
        }
        case "RestartUnit": withUnit(call, responder) { service in
            do throws(ManagerError) {
                try manager.processes.restart(service)
                wait(service, responder)
            } catch {
                responder.reply(failure(error))
            }
        }
        case "ListFDStore": withUnit(call, responder, reading: true) { service in
            let entries = manager.stores.describe(service).map { JSONValue.from($0) }
            responder.reply(Varlink.Reply(parameters: ["unit": .string(service.name.full), "entries": .array(entries)]))
        }
        case "CleanUnit": withUnit(call, responder) { service in
            do throws(ManagerError) {
                try manager.stores.clean(service)
                responder.reply(unitReply(service))
            } catch {
                responder.reply(failure(error))
            }
        }
        case "Reload":
            onReload()
            responder.reply(Varlink.Reply())
        case "Reexecute":
            responder.reply(Varlink.Reply())
            onReexecute(call.parameters["program"]?.string)
        case "Kexec":
            liveUpdate(Self.kexecRequest(call), responder)
        case "Preflight":
            responder.reply(Varlink.Reply(parameters: ["preflight": JSONValue.from(orchestrator.preflight(Self.kexecRequest(call)))]))
        case "GetLiveUpdate":
            var parameters: [String: JSONValue] = ["kexecCount": .number(Double(manager.kexecCount))]
            if let report = orchestrator.lastRestoreReport { parameters["restore"] = JSONValue.from(report) }
            responder.reply(Varlink.Reply(parameters: parameters))
        default:
            responder.reply(.failure("org.varlink.service.MethodNotFound", ["method": .string(call.method)]))
        }
    }

    /// Answers when the update is refused, rolls back, or (a rehearsal) is about to hand over;
    /// a real kexec that succeeds answers nothing: the connection ends with the old kernel.
    private func liveUpdate(_ request: KexecRequest, _ responder: VarlinkServer.Responder) {
        do throws(LiveUpdateOrchestrator.Busy) {
            try orchestrator.begin(request) { outcome in
                switch outcome {
                case .handingOver(let report):
                    responder.reply(Varlink.Reply(parameters: ["report": JSONValue.from(report)]))
                    // This process may be replaced next (a rehearsal): the whole answer goes out first.
                    responder.flush()
                case .refused(let report), .rolledBack(let report):
                    responder.reply(.failure("\(Self.interfaceName).LiveUpdateFailed", ["report": JSONValue.from(report)]))
                }
            }
        } catch {
            // ferry-kexec.service during a kexec that `ferryctl kexec` itself asked for: already done.
            if request.handedOver && error.phase == .handOver {
                return responder.reply(Varlink.Reply(parameters: ["alreadyHandingOver": .bool(true)]))
            }
            responder.reply(.failure("\(Self.interfaceName).LiveUpdateInProgress", ["phase": .string(error.phase.rawValue)]))
        }
    }

    /// Starts the unit and what it needs, in order; answers once its job is done (at once with
    /// `noBlock`, like systemctl --no-block).
    private func start(_ service: Service, noBlock: Bool, _ responder: VarlinkServer.Responder) {
        guard !service.isStub else {
            return responder.reply(failure(ManagerError(code: .notLoaded, unit: service.name.full, message: "no unit file (not-found)")))
        }
        manager.jobs.start([service.name.full]) { [unowned self] _, succeeded in
            guard !noBlock else { return }
            if succeeded {
                responder.reply(unitReply(service))
            } else {
                responder.reply(startFailed(service))
            }
        }
        if noBlock { responder.reply(unitReply(service)) }
    }

    /// Answers once the unit leaves activating/deactivating.
    private func wait(_ service: Service, _ responder: VarlinkServer.Responder, starting: Bool = true) {
        if service.state.isTransient && service.state.sub != .autoRestart {
            waiting.append((service.name, starting, responder))
        } else {
            responder.reply(unitReply(service))
        }
    }

    private func settle(_ service: Service) {
        guard !service.state.isTransient || service.state.sub == .autoRestart else { return }
        // The stop half of a restart: the caller waits for the start.
        if service.startAfterStop { return }
        let ready = waiting.filter { $0.unit == service.name }
        waiting.removeAll { $0.unit == service.name }
        for entry in ready {
            if entry.starting && (service.state.active == .failed || service.state.sub == .autoRestart) {
                entry.responder.reply(startFailed(service))
            } else {
                entry.responder.reply(unitReply(service))
            }
        }
    }

    /// - Parameter reading: a read never creates state: a unit known only by its file (a template
    ///   instance, say) is looked at without being registered.
    private func withUnit(_ call: Varlink.Call, _ responder: VarlinkServer.Responder, reading: Bool = false,
                          _ body: (Service) -> Void) {
        guard let text = call.parameters["name"]?.string else {
            responder.reply(.failure("org.varlink.service.InvalidParameter", ["parameter": .string("name")]))
            return
        }
        guard let name = UnitName(text) else {
            responder.reply(.failure("\(Self.interfaceName).InvalidUnitName", ["name": .string(text)]))
            return
        }
        guard let service = reading ? manager.units.peek(name) : manager.units.existingService(name) else {
            responder.reply(.failure("\(Self.interfaceName).NoSuchUnit", ["name": .string(text)]))
            return
        }
        body(service)
    }

    /// The live update readiness, looked up at most once a second: GetManager is what clients poll.
    private func liveUpdateReadiness() -> JSONValue {
        let now = MonotonicClock.now()
        if let cached = readiness, now - cached.at < .seconds(1) { return cached.value }
        let value = JSONValue.from(LiveUpdateReadiness.check(orchestrator.backend))
        readiness = (now, value)
        return value
    }

    private func startFailed(_ service: Service) -> Varlink.Reply {
        .failure("\(Self.interfaceName).StartFailed", [
            "name": .string(service.name.full), "reason": .string(service.result),
            "detail": service.startFailure.map { .string($0) } ?? .null,
        ])
    }

    private func unitReply(_ service: Service) -> Varlink.Reply {
        Varlink.Reply(parameters: ["unit": JSONValue.from(UnitSummary(service, enabled: manager.units.isEnabled(service.name)))])
    }

    private func failure(_ error: ManagerError) -> Varlink.Reply {
        switch error.code {
        case .unitBusy:
            return .failure("\(Self.interfaceName).UnitBusy", ["name": .string(error.unit), "state": .string(error.message)])
        case .noSuchUnit:
            return .failure("\(Self.interfaceName).NoSuchUnit", ["name": .string(error.unit)])
        case .startFailed, .notLoaded:
            return .failure("\(Self.interfaceName).StartFailed", ["name": .string(error.unit), "reason": .string(error.message)])
        }
    }

    private func service(_ method: String, _ call: Varlink.Call) -> Varlink.Reply {
        switch method {
        case "GetInfo":
            return Varlink.Reply(parameters: [
                "vendor": .string("Ferry"), "product": .string("ferryd"), "version": .string(FerryVersion.current),
                "url": .string("https://ferry.invalid/"),
                "interfaces": .array(([.string("org.varlink.service"), .string(Self.interfaceName)])
                    + otherInterfaces.keys.sorted().map { .string($0) }),
            ])
        case "GetInterfaceDescription":
            guard let name = call.parameters["interface"]?.string else {
                return .failure("org.varlink.service.InvalidParameter", ["parameter": .string("interface")])
            }
            guard let description = name == Self.interfaceName ? Self.description : otherInterfaces[name] else {
                return .failure("org.varlink.service.InterfaceNotFound", ["interface": .string(name)])
            }
            return Varlink.Reply(parameters: ["description": .string(description)])
        default:
            return .failure("org.varlink.service.MethodNotFound", ["method": .string(call.method)])
        }
    }

    /// The parameters each method takes and their JSON types; a present parameter of another
    /// type (`rehearse: "yes"`) is refused, never read as its default.
    static let parameterTypes: [String: [String: ParameterType]] = [
        "GetUnit": ["name": .string], "StartUnit": ["name": .string, "noBlock": .bool], "StopUnit": ["name": .string],
        "RestartUnit": ["name": .string], "CleanUnit": ["name": .string], "ListFDStore": ["name": .string],
        "EnableUnit": ["name": .string], "DisableUnit": ["name": .string], "Reexecute": ["program": .string],
        "GetUnitLogs": ["name": .string, "lines": .number],
        "Preflight": ["kernel": .string, "initrd": .string, "commandLine": .string, "reuseCommandLine": .bool, "rehearse": .bool,
                      "requireAll": .bool],
        "Kexec": ["kernel": .string, "initrd": .string, "commandLine": .string, "reuseCommandLine": .bool, "rehearse": .bool,
                  "handedOver": .bool, "requireAll": .bool],
    ]

    enum ParameterType { case string, bool, number }

    static func mistypedParameter(_ call: Varlink.Call) -> String? {
        let method = call.method.split(separator: ".").last.map(String.init) ?? ""
        guard let types = parameterTypes[method] else { return nil }
        for (name, value) in call.parameters {
            guard let type = types[name] else { return name }  // unknown to this method
            switch (type, value) {
            case (_, .null), (.string, .string), (.bool, .bool), (.number, .number): continue
            default: return name
            }
        }
        return nil
    }

    /// Kexec's and Preflight's parameters (types already checked by `mistypedParameter`).
    static func kexecRequest(_ call: Varlink.Call) -> KexecRequest {
        var request = KexecRequest(
            kernel: call.parameters["kernel"]?.string, initrd: call.parameters["initrd"]?.string,
            commandLine: call.parameters["commandLine"]?.string,
            reuseCommandLine: call.parameters["reuseCommandLine"]?.bool ?? false,
            rehearse: call.parameters["rehearse"]?.bool ?? false)
        request.handedOver = call.parameters["handedOver"]?.bool ?? false
        request.requireAll = call.parameters["requireAll"]?.bool ?? false
        return request
    }

    private func split(_ method: String) -> (String, String) {
        guard let dot = method.lastIndex(of: ".") else { return ("", method) }
        return (String(method[..<dot]), String(method[method.index(after: dot)...]))
    }
}
