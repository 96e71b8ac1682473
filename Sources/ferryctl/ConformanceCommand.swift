import ArgumentParser
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateConformance
import LiveUpdateEmulator
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl conformance`: kernel-luo.md's rules as cases, against the emulator or the kernel.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run the LUO conformance table.",
        discussion: """
            With --emulated (the default) each profile runs in an emulator inside this process: phase 1, \
            a simulated kexec, phase 2. With --kernel, one phase runs against /dev/liveupdate; phase 1 \
            can end by kexec'ing into the next kernel (--kexec-kernel), whose init runs phase 2.
            """)

    @Option(help: "Emulated profiles to run: 6.19, 7.1, 7.2, 7.3 or all.")
    var emulated: String?

    @OptionGroup var backendOptions: BackendOptions

    @Option(help: "With --kernel or --socket: the phase to run (1: before the kexec, 2: after it).")
    var phase: String = "1"

    @Option(help: "After phase 1, load this kernel with kexec_file_load and reboot into it.")
    var kexecKernel: String?

    @Option(help: "The initrd for --kexec-kernel.")
    var kexecInitrd: String?

    @Option(help: "The next kernel's command line (default: this kernel's).")
    var kexecAppend: String?

    @Option(help: "Run only these case ids (comma-separated).")
    var only: String?

    @Flag(help: "With --emulated: fail if this process holds more descriptors after the run than before.")
    var checkLeaks = false

    @Flag(help: "List the cases and exit.")
    var list = false

    @Flag(help: "Print one JSON object at the end instead of a line per case.")
    var json = false

    /// Text output, silenced by --json.
    private func say(_ text: String) { if !json { print(text) } }

    private static func json(_ results: [ConformanceRunner.Result]) -> JSONValue {
        .array(results.map { result in
            .object(["id": .string(result.id), "section": .string(result.section), "verdict": .string(result.verdict.rawValue),
                     "observed": .string(result.observed), "expected": .string(result.expected),
                     "note": result.note.map { .string($0) } ?? .null])
        })
    }

    func run() throws {
        if list {
            if json {
                print(JSONValue.array(ConformanceRunner.table.map { testCase in
                    .object(["id": .string(testCase.id), "section": .string(testCase.section),
                             "stage": .string(testCase.stage.rawValue), "summary": .string(testCase.summary)])
                }).encodedString())
                return
            }
            for testCase in ConformanceRunner.table {
                print("\(testCase.id)\t\(testCase.section)\t\(testCase.stage.rawValue)\t\(testCase.summary)")
            }
            return
        }
        ResourceLimits.raiseDescriptorLimit()
        let selected = Set((only ?? "").split(separator: ",").map(String.init))
        if backendOptions.kernel || backendOptions.socket != nil {
            try runAgainstBackend(selected)
        } else {
            try runEmulated(selected)
        }
    }

    /// Every requested profile in an in-process emulator: phase 1, simulated kexec, phase 2.
    private func runEmulated(_ selected: Set<String>) throws {
        let names = (emulated ?? "all") == "all" ? BehaviourLevel.allCases.map(\.rawValue) : [emulated!]
        var failed = 0
        var all: [ConformanceRunner.Result] = []
        var profiles: [String: JSONValue] = [:]
        let descriptorsBefore = openDescriptorCount()
        for name in names {
            guard let level = BehaviourLevel(rawValue: name) else { throw ValidationError("unknown profile '\(name)'") }
            let path = "/tmp/ferry-conformance-\(getpid())-\(name).sock"
            var logger = Logger(label: "ferry.luo-emulator")
            logger.logLevel = .warning
            let host = try EmulatorHost(socketPath: path, profile: EmulatorProfile(level), logger: logger)
            defer { host.stop() }
            say("== profile \(name) (emulator)")
            var results = try phase(.beforeKexec, backend: host.backend, level: level, emulator: true, selected,
                                    keepOpen: true)
            let report = try EmulatorControl.simulateKexec(socketPath: path)
            say("-- simulated kexec: \(report.count) bytes of report" + (report.contains("\"violations\":[]") ? "" : ": \(report)"))
            // What phase 1 kept open belongs to the previous boot now.
            ConformanceCommand.heldForKexec.removeAll()
            results += try phase(.afterKexec, backend: host.backend, level: level, emulator: true, selected)
            say("profile \(name): " + ConformanceRunner.summary(results))
            failed += results.filter { $0.verdict == .fail }.count
            all += results
            profiles[name] = Self.json(results)
        }
        if checkLeaks {
            let descriptorsAfter = openDescriptorCount()
            say("descriptors: \(descriptorsBefore) before, \(descriptorsAfter) after")
            if descriptorsAfter != descriptorsBefore { failed += 1 }
        }
        say(ConformanceRunner.summary(all))
        if json {
            print(JSONValue.object(["profiles": .object(profiles), "summary": .string(ConformanceRunner.summary(all)),
                                    "failed": .number(Double(failed))]).encodedString())
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// One phase against the kernel or an emulator socket; phase 1 may end in a real kexec.
    private func runAgainstBackend(_ selected: Set<String>) throws {
        guard let backend = backendOptions.backend, let which = ConformanceRunner.Phase(rawValue: phase) else {
            throw ValidationError("--phase takes 1 or 2")
        }
        let level = try probeLevel(backend)
        say("== \(backend.name), phase \(which.rawValue), level \(level.rawValue)")
        let results = try self.phase(which, backend: backend, level: level, emulator: backend is EmulatorBackend,
                                     selected, keepOpen: kexecKernel != nil)
        say(ConformanceRunner.summary(results))
        if json {
            print(JSONValue.object(["backend": .string(backend.name), "phase": .string(which.rawValue),
                                    "level": .string(level.rawValue), "results": Self.json(results),
                                    "summary": .string(ConformanceRunner.summary(results))]).encodedString())
        }
        if let kexecKernel, which == .beforeKexec {
            let commandLine = kexecAppend ?? Kexec.currentCommandLine() ?? ""
            say("loading \(kexecKernel) for kexec with: \(commandLine)")
            try Kexec.load(kernel: kexecKernel, initrd: kexecInitrd, commandLine: commandLine)
            say("rebooting into the next kernel (sessions held open)")
            fflush(nil)
            try Kexec.reboot()
        }
        if results.contains(where: { $0.verdict == .fail }) { throw ExitCode(1) }
    }

    private func probeLevel(_ backend: any LiveUpdateBackend) throws -> BehaviourLevel {
        let device = try LiveUpdateDevice.open(backend)
        let finding = try BehaviourProbe.probe(device)
        say("probe: \(finding)")
        return finding.level
    }

    /// Sessions kept for the kexec live in `context`; with `keepOpen` it is deliberately leaked
    /// so that they stay open until reboot() returns or replaces this process.
    private func phase(_ phase: ConformanceRunner.Phase, backend: any LiveUpdateBackend, level: BehaviourLevel,
                       emulator: Bool, _ selected: Set<String>, keepOpen: Bool = false) throws -> [ConformanceRunner.Result] {
        let context = try ConformanceContext(backend: backend, level: level)
        let results = ConformanceRunner.run(phase, context: context, isEmulator: emulator, only: selected) {
            say($0.line)
        }
        // The device is closed before a kexec: nothing else needs it, and the next phase reopens it.
        context.closeDevice()
        if keepOpen { ConformanceCommand.heldForKexec.append(context) }
        return results
    }

    nonisolated(unsafe) static var heldForKexec: [ConformanceContext] = []
}

/// The number of descriptors open in this process.
func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while readdir(directory) != nil { count += 1 }
    return count - 3  // ".", "..", and the directory's own descriptor
}
