import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateConformance
import LiveUpdateEmulator
import Testing

/// The whole conformance table against the emulator, one profile at a time, across a simulated kexec.
@Suite(.serialized) struct ConformanceTableTests {
    @Test(arguments: BehaviourLevel.allCases)
    func everyCasePasses(level: BehaviourLevel) throws {
        let failures = try withEmulator(level) { host -> [String] in
            var results: [ConformanceRunner.Result] = []
            do {
                let before = try ConformanceContext(backend: host.backend, level: level)
                results += ConformanceRunner.run(.beforeKexec, context: before, isEmulator: true)
                before.closeDevice()
                // The sessions phase 1 keeps are still open here, as they would be at reboot().
                let report = try EmulatorControl.simulateKexec(socketPath: host.socketPath)
                #expect(report.contains("\"liveUpdateNumber\":1"))
                #expect(report.contains("\"violations\":[]"))
            }
            let after = try ConformanceContext(backend: host.backend, level: level)
            results += ConformanceRunner.run(.afterKexec, context: after, isEmulator: true)
            #expect(results.count == ConformanceRunner.table.count)
            return results.filter { $0.verdict != .pass }.map(\.line)
        }
        #expect(failures == [], "profile \(level.rawValue)")
    }

    @Test func tableCoversEverySpecSection() {
        let sections = Set(ConformanceRunner.table.map(\.section))
        for section in ["§1", "§2.1", "§2.2", "§2.3", "§2.4", "§2.5", "§2.6", "§2.7", "§2.8", "§3", "§4", "§5"] {
            #expect(sections.contains(section), "no case for \(section)")
        }
        #expect(Set(ConformanceRunner.table.map(\.id)).count == ConformanceRunner.table.count, "case ids are unique")
    }
}
