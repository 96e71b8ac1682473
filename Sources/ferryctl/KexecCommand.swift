import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdateReports

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl kexec`: a live update through ferryd.
struct KexecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kexec",
        abstract: "Live-update into a new kernel, keeping every preserved fd store (or rehearse it).",
        discussion: """
            Stops the units, preserves the stores of units with FileDescriptorStorePreserve=yes or \
            on-success in Ferry's LUO session, and reboots into the loaded kernel. Anything that fails \
            before the reboot is rolled back: the units start again with their stores. With --rehearse \
            (ferryd running against the LUO emulator) the reboot is a simulated kexec, ferryd starts \
            again as on a fresh boot, restores, and the phase timings are printed.

            --dry-run stops nothing: it says, for every unit and stored fd, whether it would survive \
            and why not (each fd is tried in a scratch LUO session where the backend allows), the memory \
            the kernel would pin, and what the target kernel needs. With --require-all, or for units \
            with X-FerryRequired=yes, any loss is a no-go (a real update then rolls back before the point \
            of no return).

            Exit status: 0 the update went (or, --dry-run, would go) through; 1 it failed and was rolled \
            back, --dry-run says no-go, or ferryd is not running; 2 --dry-run says go with losses; 4 not \
            allowed (root only).
            """)

    @OptionGroup var options: ControlOptions
    @Option(help: "The kernel image to load with kexec_file_load.") var kernel: String?
    @Option(help: "The initrd for --kernel.") var initrd: String?
    @Option(help: "The new kernel's command line.") var append: String?
    @Flag(help: "Use this kernel's command line.") var reuseCmdline = false
    @Flag(help: "Rehearse against the emulator instead of rebooting.") var rehearse = false
    @Flag(help: "The kexec is already under way (run by systemd's kexec.target, see contrib/systemd): prepare the stores and hold them, without asking for a kexec.")
    var handedOver = false
    @Flag(help: "Say what would survive, change nothing.") var dryRun = false
    @Flag(help: "Abort (roll back) if any stored fd would be lost.") var requireAll = false

    func run() throws {
        var parameters: [String: JSONValue] = ["rehearse": .bool(rehearse), "reuseCommandLine": .bool(reuseCmdline)]
        if handedOver { parameters["handedOver"] = .bool(true) }
        if requireAll { parameters["requireAll"] = .bool(true) }
        if let kernel { parameters["kernel"] = .string(kernel) }
        if let initrd { parameters["initrd"] = .string(initrd) }
        if let append { parameters["commandLine"] = .string(append) }
        if dryRun { return try preflight(parameters) }
        let outcome = try LiveUpdateClient.run(control: options.path, parameters)
        guard outcome.succeeded else {
            var failure = Failure(code: "live-update-failed", message: outcome.text,
                                  hint: "the units run again with their stores; ferryd's log has each step")
            failure.varlinkError = outcome.error
            failure.parameters = outcome.json.object ?? [:]
            throw failure
        }
        options.emit(outcome.json) { outcome.text }
    }
}

extension KexecCommand {
    func preflight(_ parameters: [String: JSONValue]) throws {
        var asked = parameters
        asked["handedOver"] = nil
        let reply = try options.call("Preflight", asked)
        guard let report = reply["preflight"]?.decode(PreflightReport.self) else {
            throw Failure(code: "unreadable-reply", message: "ferryd's Preflight answer is not one this ferryctl can read",
                          hint: "run the ferryctl that came with this ferryd (ferryctl --version, ferryctl status)")
        }
        options.emit(reply["preflight"] ?? .null) { Self.table(report) }
        switch report.verdict {
        case "go": return
        case "go-with-losses": throw ExitCode(2)
        default: throw ExitCode(1)
        }
    }

    static func table(_ report: PreflightReport) -> String {
        var lines = ["UNIT\tFD\tTYPE\tGROUP\tSURVIVES\tWHY"]
        for entry in report.entries {
            lines.append("\(entry.unit)\t\(entry.name)\t\(entry.type)\t\(entry.group ?? "-")\t\(entry.survives ? "yes" : "NO")\t\(entry.reason ?? "")")
        }
        let lost = report.entries.filter { !$0.survives }.count
        lines.append("")
        lines.append("\(report.entries.count - lost) of \(report.entries.count) stored fd(s) would survive; \(report.pinnedBytes) bytes pinned")
        lines.append("kernel: \(report.kernel)")
        lines.append("how: \(report.method)")
        for unit in report.prepare { lines.append("prepare first: \(unit)") }
        for problem in report.problems { lines.append("no-go: \(problem)") }
        lines.append("verdict: \(report.verdict)")
        return lines.joined(separator: "\n")
    }
}

/// Drives a live update over Varlink and follows it to the end.
enum LiveUpdateClient {
    struct Outcome {
        var succeeded: Bool
        var text: String
        var json: JSONValue
        var restore: RestoreReport?
        /// The Varlink error, when ferryd refused or rolled back.
        var error: String?
    }

    static func run(control: String, _ parameters: [String: JSONValue]) throws -> Outcome {
        var client: VarlinkClient
        do throws(SystemCallError) { client = try VarlinkClient(path: control) } catch {
            throw Failure.cannotConnect(control, error.errno)
        }
        let reply: Varlink.Reply
        do throws(SystemCallError) {
            reply = try client.call(Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: parameters))
        } catch {
            // A rehearsal always answers before ferryd starts again: silence means ferryd died.
            if parameters["rehearse"]?.bool == true {
                return Outcome(succeeded: false, text: "ferryd ended during the rehearsal without answering (\(error)); see its log",
                               json: .object(["failed": .string("ferryd ended during the rehearsal")]))
            }
            // The connection died with the old kernel: that is what a successful kexec looks like.
            return Outcome(succeeded: true, text: "ferryd is rebooting into the new kernel", json: .object(["rebooting": .bool(true)]))
        }
        let report = reply.parameters["report"]?.decode(LiveUpdateReport.self)
        if let error = reply.error {
            guard error.hasSuffix(".LiveUpdateFailed") else {
                throw Failure.fromReply(reply, method: "io.ferry.Manager.Kexec", unit: nil, command: "kexec")
            }
            // A rollback only when something was undone: refused before the stop, nothing changed.
            let undone = report?.timings.stop != nil
            var text = "live update \(undone ? "failed and was rolled back" : "refused, nothing was changed"): \(report?.failure ?? error)"
            for skipped in report?.skipped ?? [] { text += "\n  skipped: \(skipped)" }
            // The prepare barrier: who answered what; each unit asked was told to resume.
            for answer in report?.barrier ?? [] {
                text += "\n  prepare: \(answer.unit) \(answer.outcome)\(answer.reason.map { " (\($0))" } ?? "")"
            }
            return Outcome(succeeded: false, text: text, json: .object(reply.parameters), error: error)
        }
        guard parameters["rehearse"]?.bool == true else {
            return Outcome(succeeded: true, text: "rebooting", json: .object(reply.parameters))
        }
        // The rehearsal goes on in a new ferryd: wait until it restored and a service is ready.
        var restore: RestoreReport?
        let deadline = MonotonicClock.now() + .seconds(120)
        while MonotonicClock.now() < deadline {
            usleep(20_000)
            guard var next = try? VarlinkClient(path: control),
                let answer = try? next.call(Varlink.Call(method: "io.ferry.Manager.GetLiveUpdate")),
                let found = answer.parameters["restore"]?.decode(RestoreReport.self), found.found
            else { continue }
            restore = found
            if found.timings.ready != nil || found.startedUnits.isEmpty { break }
        }
        guard let restore else {
            return Outcome(succeeded: false, text: "ferryd did not come back after the simulated kexec", json: .null)
        }
        var text = "rehearsed live update: \(report?.preserved.count ?? 0) entr\(report?.preserved.count == 1 ? "y" : "ies") preserved, \(restore.restored.count) restored, kexec count \(restore.kexecCount)\n"
        text += timingTable(restore.timings)
        for skipped in report?.skipped ?? [] { text += "\n  skipped: \(skipped)" }
        for problem in restore.problems { text += "\n  not restored: \(problem)" }
        return Outcome(succeeded: restore.problems.isEmpty && (report?.skipped.isEmpty ?? true), text: text,
                       json: .object(["update": reply.parameters["report"] ?? .null, "restore": JSONValue.from(restore)]),
                       restore: restore)
    }

    static func timingTable(_ timings: LiveUpdateTimings) -> String {
        var rows = timings.rows.map { [$0.0, $0.1.map { String(format3: $0) } ?? "-"] }
        if let blackout = timings.blackout { rows.append(["blackout (stop → ready)", String(format3: Double(blackout) / 1000)]) }
        return table(["PHASE", "MS"], rows)
    }
}

extension String {
    /// A number of milliseconds with 3 decimals.
    init(format3 value: Double) {
        let scaled = Int((value * 1000).rounded())
        let fraction = String(abs(scaled) % 1000)
        self = "\(scaled / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
