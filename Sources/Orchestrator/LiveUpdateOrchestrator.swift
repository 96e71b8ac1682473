import CFerry
import FDStore
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What `ferryctl kexec` asks for.
public struct KexecRequest: Sendable, Codable {
    public var kernel: String?
    public var initrd: String?
    public var commandLine: String?
    public var reuseCommandLine: Bool
    /// Use the emulator's simulated kexec and start ferryd again instead of rebooting.
    public var rehearse: Bool

    public init(kernel: String? = nil, initrd: String? = nil, commandLine: String? = nil, reuseCommandLine: Bool = false,
                rehearse: Bool = false) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.reuseCommandLine = reuseCommandLine
        self.rehearse = rehearse
    }
}

/// The live update, from ferryd's side: stop → serialize → preserve → mapping → kexec, with a
/// rollback on any failure before the point of no return; and the restore after boot.
public final class LiveUpdateOrchestrator {
    public let manager: Manager
    public let backend: any LiveUpdateBackend
    /// Ferry's own session; stored sessions of this name are refused (namespace guard).
    public let sessionName: String
    let logger: Logger
    var lastRestoreStorage: RestoreReport?

    public init(manager: Manager, backend: any LiveUpdateBackend, sessionName: String = "ferry", logger: Logger) {
        self.manager = manager
        self.backend = backend
        self.sessionName = sessionName
        self.logger = logger
    }

    /// What the update holds open until the reboot: Ferry's session (the stores keep the rest).
    public struct Prepared: ~Copyable {
        public let session: LiveUpdateSession
        public var report: LiveUpdateReport
        public let activeUnits: [UnitName]
    }

    /// Runs the update. On success `reboot` is called with everything prepared and is expected
    /// not to return; if it returns an error, or anything fails earlier, everything is rolled
    /// back (session closed, units restarted with their stores) and the report says what failed.
    public func run(_ request: KexecRequest, reboot: (borrowing Prepared) -> String?) -> LiveUpdateReport {
        var report = LiveUpdateReport(sessionName: sessionName, rehearsal: request.rehearse)
        let shutdownStart = MonotonicClock.microseconds()
        if request.rehearse && !(backend is EmulatorBackend) {
            report.failure = "a rehearsal needs the LUO emulator (set \(EmulatorWire.environmentVariable))"
            return report
        }
        if let failure = loadKernel(request) {
            report.failure = failure
            logger.error("live update refused: \(failure)")
            return report
        }

        var clock = MonotonicClock.microseconds()
        let active = stopUnits()
        report.timings.stop = lap(&clock)

        let (entries, skipped) = collectStores()
        report.skipped += skipped
        report.timings.serialize = lap(&clock)

        switch preserve(entries, report: &report, activeUnits: active, shutdownStart: shutdownStart, since: clock) {
        case .failure(let failure):
            report.failure = failure.text
            rollBack(active, reason: failure.text)
            return report
        case .success(let session):
            let prepared = Prepared(session: session, report: report, activeUnits: active)
            logger.info("preserved fd stores in LUO session '\(sessionName)': \(report.preserved.count) entr\(report.preserved.count == 1 ? "y" : "ies"), \(report.skipped.count) skipped; \(request.rehearse ? "simulating kexec" : "rebooting with kexec")")
            let failure = reboot(prepared)
            report = prepared.report
            // Only a failed reboot comes back here: the session closes as `prepared` goes away.
            _ = consume prepared
            report.failure = failure ?? "reboot returned without an error"
            rollBack(active, reason: report.failure!)
            return report
        }
    }

    private func lap(_ clock: inout UInt64) -> UInt64 {
        let now = MonotonicClock.microseconds()
        defer { clock = now }
        return now - clock
    }

    private func loadKernel(_ request: KexecRequest) -> String? {
        guard !request.rehearse else { return nil }
        if let kernel = request.kernel {
            let commandLine = request.commandLine ?? (request.reuseCommandLine ? Kexec.currentCommandLine() ?? "" : "")
            do throws(SystemCallError) {
                try Kexec.load(kernel: kernel, initrd: request.initrd, commandLine: commandLine)
                logger.info("loaded \(kernel) for kexec with command line '\(commandLine)'")
            } catch {
                return "\(error.call): \(error.errno.symbolicName) (\(error.errno))"
            }
            return nil
        }
        return Kexec.isLoaded ? nil : "no kernel is loaded for kexec; give --kernel (and --initrd, --append or --reuse-cmdline)"
    }

    // MARK: - Stop

    /// Stops every running unit, holding every store; returns the units that were running.
    private func stopUnits() -> [UnitName] {
        let running = manager.services.values.filter { !$0.state.isAtRest || $0.mainPID != nil }
        let active = running.filter { $0.state.active == .active || $0.state.active == .activating || $0.state.active == .reloading }
            .map(\.name).sorted()
        for service in manager.services.values { manager.stop(service, keepingStore: true) }
        let deadline = MonotonicClock.now() + .seconds(120)
        while manager.services.values.contains(where: { $0.mainPID != nil }) && MonotonicClock.now() < deadline {
            try? manager.loop.runOnce(timeoutMilliseconds: 50)
            manager.reapChildren()
        }
        logger.info("stopped \(running.count) unit(s) for the live update")
        return active
    }

    // MARK: - Serialize

    struct Carried {
        var unit: UnitName
        var name: String
        var fd: CInt
        var sessionName: String?
    }

    /// The entries of every store that outlives its process (yes, on-success), newest first.
    private func collectStores() -> ([Carried], [String]) {
        var carried: [Carried] = []
        var skipped: [String] = []
        var infringing: [(Service, UInt64)] = []
        for service in manager.services.values.sorted(by: { $0.name < $1.name })
        where service.config.fdStorePreserve.outlivesProcess && !service.store.isEmpty {
            for entry in service.store.entries {
                guard let identity = SessionIdentity.of(entry.descriptor) else {
                    carried.append(Carried(unit: service.name, name: entry.name, fd: entry.fd))
                    continue
                }
                var name = identity.name
                if name == nil {
                    name = try? LiveUpdateSession.readName(fd: entry.fd)
                }
                guard let sessionName = name else {
                    skipped.append("unit \(service.name) fd '\(entry.name)': a LUO session whose name cannot be read, skipped")
                    continue
                }
                if sessionName == self.sessionName {
                    // Held open it would make Ferry's own CREATE_SESSION fail with EEXIST, so it is
                    // dropped now; it could never be told apart from Ferry's session after boot.
                    let text = "unit \(service.name) fd '\(entry.name)': session '\(sessionName)' infringes Ferry's namespace, dropped"
                    logger.warning("\(text)")
                    skipped.append(text)
                    infringing.append((service, entry.id))
                    continue
                }
                carried.append(Carried(unit: service.name, name: entry.name, fd: entry.fd, sessionName: sessionName))
            }
        }
        for (service, id) in infringing { manager.dropStored(id: id, from: service) }
        let notCarried = manager.services.values.filter { !$0.config.fdStorePreserve.outlivesProcess && !$0.store.isEmpty }
        for service in notCarried {
            skipped.append("unit \(service.name): \(service.store.count) stored fd(s) not carried (FileDescriptorStorePreserve=\(service.config.fdStorePreserve.rawValue))")
        }
        return (carried, skipped)
    }

    // MARK: - Preserve

    struct Failure: Error { let text: String }

    private func preserve(_ entries: [Carried], report: inout LiveUpdateReport, activeUnits: [UnitName],
                          shutdownStart: UInt64, since phaseStart: UInt64) -> Result<LiveUpdateSession, Failure> {
        let session: LiveUpdateSession
        do throws(LiveUpdateError) {
            let device = try LiveUpdateDevice.open(backend)
            session = try device.createSession(named: sessionName)
        } catch {
            return .failure(Failure(text: "\(error)"))
        }
        // The mapping is preserved first, sized for the worst case and written at the end (writes
        // inside a preserved memfd's size stay allowed), so a session that fills up (128 files
        // before 7.2) loses the last fds with a warning, never the mapping and with it everything.
        let capacity = 65536 + entries.count * 1024
        guard let mappingFD = try? Memfd.create(name: "ferry-mapping"),
            (try? FileIO.truncate(mappingFD.borrowed, to: Int64(capacity))) != nil
        else {
            return .failure(Failure(text: "cannot create the mapping memfd of \(capacity) bytes"))
        }
        do throws(LiveUpdateError) {
            try session.preserve(mappingFD.borrowed, token: LiveUpdateMapping.mappingToken)
        } catch {
            return .failure(Failure(text: "the mapping could not be preserved at token 0: \(error)"))
        }
        var mapping = LiveUpdateMapping()
        var byUnit: [(unit: String, entries: [LiveUpdateMapping.Entry])] = []
        var token: UInt64 = 1
        for entry in entries {
            var mapped: LiveUpdateMapping.Entry
            if let name = entry.sessionName {
                mapped = .session(name: entry.name, sessionName: name)
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "luo_session", sessionName: name))
            } else {
                do throws(LiveUpdateError) {
                    try session.preserve(FileDescriptor(rawValue: entry.fd), token: token)
                } catch {
                    let text = "unit \(entry.unit) fd '\(entry.name)': \(error.operation) failed: \(error.errno?.symbolicName ?? "\(error.kind)"), will be lost across kexec"
                    logger.warning("\(text)")
                    report.skipped.append(text)
                    continue
                }
                mapped = .fd(name: entry.name, token: token)
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "fd", token: token))
                token += 1
            }
            if let index = byUnit.firstIndex(where: { $0.unit == entry.unit.full }) {
                byUnit[index].entries.append(mapped)
            } else {
                byUnit.append((entry.unit.full, [mapped]))
            }
        }
        mapping.units = byUnit
        mapping.kexecsCount = manager.kexecCount
        // The phase ends here; writing the mapping itself is part of the hand-over.
        report.timings.preserve = MonotonicClock.microseconds() - phaseStart
        mapping.state["ferry"] = .object([
            "activeUnits": .array(activeUnits.map { .string($0.full) }),
            "bootID": .string(Self.bootID()),
            "shutdownStart": .number(Double(shutdownStart)),
            "timings": JSONValue.from(report.timings),
        ])
        // The hand-over moment is written last, as late as possible.
        let finish = MonotonicClock.microseconds()
        mapping.state["ferry"] = mapping.state["ferry"].map { value -> JSONValue in
            var object = value.object ?? [:]
            object["shutdownFinish"] = .number(Double(finish))
            return .object(object)
        }
        let document = mapping.encoded()
        guard document.count <= capacity else {
            return .failure(Failure(text: "the mapping (\(document.count) bytes) outgrew its memfd (\(capacity) bytes)"))
        }
        do {
            // Trailing spaces fill the rest: JSON readers skip them. No write seal: a real kernel
            // refuses F_SEAL_WRITE on a preserved memfd (EBUSY, its pages are pinned), and the
            // preserved size is frozen anyway.
            try FileIO.writeAll(mappingFD.borrowed, document + [UInt8](repeating: 0x20, count: capacity - document.count), at: 0)
        } catch {
            return .failure(Failure(text: "the mapping could not be written: \(error)"))
        }
        return .success(session)
    }

    /// /proc/sys/kernel/random/boot_id: tells a rehearsal (same boot) from a real kexec.
    static func bootID() -> String {
        (FileIO.text(ofFile: "/proc/sys/kernel/random/boot_id", limit: 128) ?? "").trimmingCharacters()
    }

    // MARK: - Rollback

    private func rollBack(_ active: [UnitName], reason: String) {
        logger.error("live update failed, rolling back: \(reason)")
        for service in manager.services.values { manager.releaseLiveUpdateHold(service) }
        for name in active {
            let service = manager.service(name)
            do throws(ManagerError) {
                try manager.start(service)
            } catch {
                logger.error("rollback: \(name) could not start again: \(error.message)")
            }
        }
        logger.info("rolled back: \(active.count) unit(s) started again with their stores")
    }
}

extension String {
    func trimmingCharacters() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == " " { text.removeLast() }
        return String(text)
    }
}
