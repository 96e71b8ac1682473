import LiveUpdateReports
import Observability
import Testing

@Suite struct UpdateSummaryTests {
    @Test func oneLineWithBlackoutServicesAndLosses() {
        let line = UpdateSummary.line(Samples.record())
        #expect(!line.contains("\n"))
        #expect(line.contains("live update a1b2c3 rehearsed: kernel 7.2.13-old → 7.2.14-new"))
        #expect(line.contains("blackout 30.0 ms"))
        #expect(line.contains("2/2 service(s) back; 4 fd(s) carried, 0 lost"))
        #expect(!UpdateSummary.isTrouble(Samples.record()))
    }

    @Test func aRollbackSaysWhy() {
        var update = Samples.update()
        update.failure = "reboot(LINUX_REBOOT_CMD_KEXEC): EIO"
        let record = UpdateRecord(failed: update, rolledBack: true, kexecCount: 0, id: "x")
        let line = UpdateSummary.line(record)
        #expect(line.contains("rolled back after 5.0 ms, 2 unit(s) started again with their stores: reboot(LINUX_REBOOT_CMD_KEXEC): EIO"))
        #expect(UpdateSummary.isTrouble(record))
    }
}
