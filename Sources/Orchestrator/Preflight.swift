import FDStore
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl kexec --dry-run`: what a live update would carry now, without stopping anything.
///
/// Where the backend can answer, it does: every plain fd is preserved in a scratch session
/// (shaped like Ferry's: the mapping's token 0 taken first) that is then closed, which the
/// kernel treats as never preserved. Only when no session can be made is the answer predicted
/// from the fd's type.
extension LiveUpdateOrchestrator {
    public func preflight(_ request: KexecRequest) -> PreflightReport {
        var report = PreflightReport()
        if let phase { report.problems.append("a live update is in progress (phase \(phase.rawValue))") }
        checkKernel(request, into: &report)
        let collection = StoreCollection.collect(from: manager, ownSession: sessionName, backend: backend, logger: logger,
                                                 dropping: false)
        for lost in collection.lost {
            report.entries.append(.init(unit: lost.unit, name: lost.name, type: lost.type, survives: false, reason: lost.reason))
        }
        if managerAbove != nil {
            // The manager above preserves what it holds in its own order: groups are Ferry's.
            tryEntries(collection.allEntries, into: &report)
        } else {
            tryEntries(collection.entries, groups: collection.groups, into: &report)
        }
        applyPolicy(request, to: &report)
        report.prepare = PrepareBarrier.candidates(in: manager).map { service in
            let config = service.config.prepareBarrier
            return "\(service.name): asked with \(config.prepareSignal), answer due within \(config.timeout)"
        }
        return report
    }

    private func checkKernel(_ request: KexecRequest, into report: inout PreflightReport) {
        if request.rehearse {
            report.kernel = "rehearsal: the emulator's simulated kexec"
            if !(backend is EmulatorBackend) { report.problems.append("a rehearsal needs the LUO emulator") }
            return
        }
        if backend is EmulatorBackend {
            report.problems.append("ferryd's backend is the LUO emulator: only a rehearsal (--rehearse) can run")
        }
        let commandLine = request.commandLine ?? (request.reuseCommandLine ? Kexec.currentCommandLine() : nil)
        if let kernel = request.kernel {
            report.kernel = "\(kernel) (to be loaded)"
            if access(kernel, R_OK) != 0 { report.problems.append("the kernel \(kernel) cannot be read: \(Errno(rawValue: errno).symbolicName)") }
        } else if Kexec.isLoaded {
            report.kernel = "already loaded (its command line cannot be read back)"
        } else {
            report.kernel = "none loaded"
            if managerAbove == nil { report.problems.append("no kernel is loaded for kexec; give --kernel") }
        }
        if let commandLine {
            report.kernel += "; command line '\(commandLine)'"
            let words = Set(commandLine.split(separator: " ").map(String.init))
            for needed in ["kho=on", "liveupdate=on"] where !words.contains(needed) {
                report.problems.append("the new kernel's command line lacks \(needed): LUO would be off after the kexec and nothing would come back")
            }
        }
        if let above = managerAbove { report.kernel += "; \(above.name) performs the kexec" }
    }

    /// Each plain fd tried in a scratch session; sessions ride by staying open.
    private func tryEntries(_ entries: [StoreCollection.Entry], groups: [StoreCollection.Group] = [],
                            into report: inout PreflightReport) {
        var groupReports: [PreflightReport.Entry] = []
        // Groups are tried while the ungrouped fds are still held, as in the real update, so an
        // fd stored twice fails (EBUSY) where it would.
        let tried = tryInScratchSession(entries, into: &report) { groupReports = tryGroups(groups) }
        for (index, entry) in entries.enumerated() {
            let fd = FileDescriptor(rawValue: entry.fd)
            guard entry.sessionName == nil else {
                report.entries.append(.init(unit: entry.unit.full, name: entry.name, type: "luo-session", survives: true,
                                            reason: "kept open: a LUO session of its own"))
                continue
            }
            let type = LossReasons.kind(of: fd)
            // Without a scratch session: memfds are the only type mainline LUO carries.
            var (survives, reason) = tried[index] ?? (type == "memfd", type == "memfd" ? nil : LossReasons.preserveFailed(.noSuchFileOrDirectory, fd: fd).reason)
            if let above = managerAbove, !entry.heldAbove {
                survives = false
                reason = "\(above.name) holds no copy of it (its store is full, or the push failed)"
            }
            let bytes = survives && type == "memfd" ? (try? FileIO.size(of: fd)) : nil
            report.pinnedBytes += bytes ?? 0
            report.entries.append(.init(unit: entry.unit.full, name: entry.name, type: type, survives: survives, reason: reason,
                                        bytes: bytes))
        }
        for entry in groupReports {
            report.pinnedBytes += entry.bytes ?? 0
            report.entries.append(entry)
        }
    }

    /// The backend's own answer for each plain fd, by index; empty when no session can be made.
    /// The session is closed unfinished on return, which releases everything preserved in it.
    private func tryInScratchSession(_ entries: [StoreCollection.Entry], into report: inout PreflightReport,
                                     whileHeld: () -> Void) -> [Int: (Bool, String?)] {
        var tried: [Int: (Bool, String?)] = [:]
        do throws(LiveUpdateError) {
            let session = try LiveUpdateDevice.open(backend).createSession(named: "\(sessionName)-preflight-\(getpid())")
            // Token 0 holds Ferry's mapping in the real session: take the same room here.
            if let placeholder = try? Memfd.create(name: "ferry-preflight-mapping") {
                try? session.preserve(placeholder.borrowed, token: LiveUpdateMapping.mappingToken)
            }
            var token: UInt64 = 1
            // Shaped like the real update: when a session is full, the next one takes the fd.
            var shards: [PreparedSession.Shard] = []
            for (index, entry) in entries.enumerated() where entry.sessionName == nil {
                let fd = FileDescriptor(rawValue: entry.fd)
                for attempt in 0..<2 {
                    do throws(LiveUpdateError) {
                        if let shard = shards.last { try shard.session.preserve(fd, token: token) } else {
                            try session.preserve(fd, token: token)
                        }
                        token += 1
                        tried[index] = (true, nil)
                        break
                    } catch {
                        tried[index] = (false, LossReasons.preserveFailed(error.errno, fd: fd).reason)
                        guard attempt == 0, error.errno == .noSpace,
                            let shard = try? PreparedSession.Shard(
                                name: "\(sessionName)-preflight-\(getpid()).\(shards.count + 1)",
                                session: LiveUpdateDevice.open(backend).createSession(named: "\(sessionName)-preflight-\(getpid()).\(shards.count + 1)"))
                        else { break }
                        shards.append(shard)
                        token = 1
                    }
                }
            }
            whileHeld()
            report.method = "backend: each fd preserved in a scratch session, then discarded"
        } catch {
            whileHeld()
            report.method = "predicted from each fd's type (no scratch session: \(error))"
            if managerAbove == nil { report.problems.append("LUO is not usable now: \(error)") }
        }
        return tried
    }

    private func applyPolicy(_ request: KexecRequest, to report: inout PreflightReport) {
        for entry in report.entries where !entry.survives {
            let required = UnitName(entry.unit).flatMap { manager.services[$0]?.config.ferryRequired } == true
            if request.requireAll || required {
                let why = request.requireAll ? "--require-all" : "\(entry.unit) has X-FerryRequired=yes"
                report.problems.append("\(why): \(entry.unit) fd '\(entry.name)' would be lost: \(entry.reason ?? "")")
            }
        }
    }
}
