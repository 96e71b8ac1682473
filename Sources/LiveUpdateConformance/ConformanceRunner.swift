import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

/// Runs the conformance table against a backend and reports each case.
public enum ConformanceRunner {
    /// Which half of a kexec round trip to run.
    public enum Phase: String, Sendable {
        /// Single-boot cases, then the preparation of what the kexec must carry.
        case beforeKexec = "1"
        /// The checks of what came back.
        case afterKexec = "2"
    }

    public enum Verdict: String, Sendable { case pass = "PASS", fail = "FAIL", skip = "SKIP" }

    public struct Result: Sendable {
        public var id: String
        public var section: String
        public var verdict: Verdict
        public var observed: String
        public var expected: String
        public var note: String?

        /// One line per case: stable, greppable, and comparable between backends.
        public var line: String {
            "case \(id) \(verdict.rawValue) observed=\"\(observed)\" expected=\"\(expected)\"" + (note.map { " note=\"\($0)\"" } ?? "")
        }
    }

    /// Every case of the table, in order.
    public static let table: [ConformanceCase] =
        DeviceCases.all + SessionCases.all + PreserveCases.all + KexecCases.all

    /// Runs the cases of `phase` and returns their results.
    ///
    /// - Parameters:
    ///   - isEmulator: expect documented emulator deviations instead of the kernel's answer.
    ///   - only: case ids to run (all when empty).
    public static func run(_ phase: Phase, context: ConformanceContext, isEmulator: Bool, only: Set<String> = [],
                           report: (Result) -> Void = { _ in }) -> [Result] {
        let stages: [ConformanceCase.Stage] = phase == .beforeKexec ? [.single, .beforeKexec] : [.afterKexec]
        var results: [Result] = []
        for stage in stages {
            for testCase in table where testCase.stage == stage && (only.isEmpty || only.contains(testCase.id)) {
                let result = run(testCase, context: context, isEmulator: isEmulator)
                report(result)
                results.append(result)
            }
        }
        return results
    }

    static func run(_ testCase: ConformanceCase, context: ConformanceContext, isEmulator: Bool) -> Result {
        guard var expected = testCase.expected(context.level) else {
            return Result(id: testCase.id, section: testCase.section, verdict: .skip, observed: "-", expected: "-",
                          note: "does not apply to \(context.level.rawValue)")
        }
        var note: String?
        if isEmulator, let deviation = testCase.emulatorDeviation {
            expected = deviation.observed
            note = "emulator deviation: \(deviation.reason)"
        }
        let observed: String
        do {
            observed = try testCase.body(context)
        } catch {
            observed = "error: \(error)"
        }
        return Result(id: testCase.id, section: testCase.section, verdict: observed == expected ? .pass : .fail,
                      observed: observed, expected: expected, note: note)
    }

    /// The closing line: `conformance: N passed, N failed, N skipped`.
    public static func summary(_ results: [Result]) -> String {
        let passed = results.filter { $0.verdict == .pass }.count
        let failed = results.filter { $0.verdict == .fail }.count
        let skipped = results.filter { $0.verdict == .skip }.count
        return "conformance: \(passed) passed, \(failed) failed, \(skipped) skipped"
    }
}
