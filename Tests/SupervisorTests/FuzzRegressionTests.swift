import FDStore
import Testing

@testable import Supervisor

/// Inputs the fuzzers in Fuzz/ found crashing; each must now be handled.
@Suite struct FuzzRegressionTests {
    /// fuzz-unitfile: `TimeoutStopSec=inf` (Double reads "inf", "nan", "1e400") trapped converting to Int64.
    @Test func timesNoDurationHoldsAreRefusedNotFatal() {
        for text in ["inf", "-inf", "nan", "1e400", "inf\u{0}\u{0}inity", String(repeating: "9", count: 400) + "d", "-5", "-1min"] {
            #expect(Values.duration(text) == nil, "accepted \(text.prefix(20))")
        }
        #expect(Values.duration("1e300") == Values.infinity)
        #expect(Values.duration("300000000 d") == Values.infinity)
        #expect(Values.duration("1e-9") == .zero)
        let (config, warnings) = ServiceConfig.interpret(UnitFile.parse("""
            [Service]
            ExecStart=/bin/true
            TimeoutStopSec=inf\u{0}\u{0}inity
            RestartSec=nan
            TimeoutStartSec=1e999
            StartLimitIntervalSec=\(String(repeating: "9", count: 400))h
            """), unit: UnitName("a.service")!)
        #expect(config.stopTimeout == .seconds(90))
        #expect(config.restartDelay == .milliseconds(100))
        #expect(warnings.count == 4)
    }
}

extension FuzzRegressionTests {
    /// fuzz-mapping (10 million inputs): a unit listed twice in `units` was read twice, each time
    /// with its last listing's entries, so the mapping written back read differently.
    @Test func aUnitListedTwiceIsReadOnceAndNamed() throws {
        let document = #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":1}]},"b.service":{"fdstore":[]},"a.service":{"fdstore":[{"type":"luo_session","name":"vm0","sessionName":"a-vm0"}]}}}"#
        guard case .success(let reading) = LiveUpdateMapping.decode(Array(document.utf8), isValidUnit: { UnitName($0) != nil }) else {
            Issue.record("refused")
            return
        }
        #expect(reading.mapping.units.map(\.unit) == ["a.service", "b.service"])
        #expect(reading.mapping.units.first?.entries == [.session(name: "vm0", sessionName: "a-vm0")])
        #expect(reading.problems == ["unit 'a.service' listed twice; only its last entry list is read"])
        // Written back (units without entries left out), it reads the same, without a problem.
        var written = reading.mapping
        written.units = written.units.filter { !$0.entries.isEmpty }
        guard case .success(let again) = LiveUpdateMapping.decode(written.encoded(), isValidUnit: { UnitName($0) != nil }) else {
            Issue.record("the written mapping was refused")
            return
        }
        #expect(again.mapping == written && again.problems.isEmpty)
    }
}
