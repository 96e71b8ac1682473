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
