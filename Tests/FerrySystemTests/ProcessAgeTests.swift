@testable import FerrySystem
import Testing

@Suite struct ProcessAgeTests {
    @Test func theStartTimeIsCountedAfterTheCommandName() {
        // A command name with spaces and parentheses must not shift the fields.
        let stat = "4242 (ferry (d) x) S 1 4242 4242 0 -1 4194560 107 0 0 0 0 0 0 0 20 0 1 0 987654 2048 12 rest"
        #expect(ProcessAge.startTime(fromStat: stat) == 987654)
        #expect(ProcessAge.startTime(fromStat: "4242 (short) S 1") == nil)
        #expect(ProcessAge.startTime(fromStat: "no parenthesis") == nil)
    }

    @Test func thisProcessIsYoungerThanTheMachine() throws {
        let age = try #require(ProcessAge.milliseconds())
        // Started by this test run: younger than a day, and the clock never runs backwards.
        #expect(age < 86_400_000)
    }
}
