import LiveUpdateReports
import Testing

/// A record made from the two sides' reports puts every bar on one time axis and counts what
/// did not come back.
@Suite struct UpdateRecordTests {
    @Test func phasesAndServicesShareOneAxisFromTheStop() {
        let record = Samples.record()
        #expect(record.id == "a1b2c3")
        #expect(record.outcome == .succeeded)
        #expect(record.kernelBefore == "7.2.13-old" && record.kernelAfter == "7.2.14-new")
        #expect(record.startedAt == "2026-03-01T12:00:05Z")
        #expect(record.phases.map(\.name) == ["stop", "serialize", "preserve", "kexec", "restore", "ready"])
        #expect(record.phases.map(\.startUs) == [0, 4000, 4100, 5000, 25_000, 28_000])
        #expect(record.blackoutUs == 30_000)
        // Units were started when the restore ended (28 ms); db ready 2 ms later, vmm 3 ms later.
        let db = record.services[0], vmm = record.services[1]
        #expect(db.stoppedUs == 1000 && db.startedUs == 28_000 && db.readyUs == 30_000 && db.back)
        #expect(vmm.stoppedUs == 2000 && vmm.startedUs == 28_100 && vmm.readyUs == 31_000 && vmm.back)
        #expect(record.carried.map(\.unit) == ["db.service", "vmm.service"])
        #expect(record.carried[0].fds == 1 && record.carried[0].sessions == ["db.service-guest"])
        #expect(record.carriedCount == 4)
        #expect(record.settled)
    }

    @Test func aStoreLeftByConfigurationIsNotALoss() {
        let record = Samples.record()
        #expect(record.lostCount == 0 && record.lost.isEmpty)
        #expect(record.notCarried.map(\.unit) == ["cache.service"])
    }

    @Test func whatWasPreservedButDidNotComeBackIsLost() {
        let update = Samples.update()
        let record = UpdateRecord(restore: Samples.restore(of: update, dropped: ["vmm.service"]), kernelAfter: "k", id: "x")
        #expect(record.lostCount == 2)
        #expect(record.lost.allSatisfy { $0.reason == .notRestored && $0.unit == "vmm.service" })
        #expect(record.carriedCount == 2)
    }

    @Test func aLossTheRestoreExplainedIsCountedOnceWithItsReason() {
        let update = Samples.update()
        var restore = Samples.restore(of: update, dropped: ["vmm.service"])
        restore.lose(.init(unit: "vmm.service", name: "state", reason: .retrieveFailed, detail: "RETRIEVE_FD failed: ENOENT"))
        let record = UpdateRecord(restore: restore, kernelAfter: "k", id: "x")
        #expect(record.lostCount == 2)
        #expect(record.lost.map(\.reason).sorted { $0.rawValue < $1.rawValue } == [.notRestored, .retrieveFailed])
    }

    @Test func aUnitStillStartingLeavesTheRecordOpen() {
        let update = Samples.update()
        let record = UpdateRecord(restore: Samples.restore(of: update, notReady: ["vmm.service"]), kernelAfter: "k", id: "x")
        #expect(!record.settled)
        #expect(record.servicesBack == 1)
        var failed = Samples.restore(of: update, notReady: ["vmm.service"])
        failed.services?[1].failed = true
        #expect(UpdateRecord(restore: failed, kernelAfter: "k", id: "x").settled)
    }

    @Test func aRolledBackUpdateKeepsItsPhasesAndFailure() {
        var update = Samples.update()
        update.failure = "reboot(LINUX_REBOOT_CMD_KEXEC): EIO"
        let record = UpdateRecord(failed: update, rolledBack: true, kexecCount: 0, id: "fallback")
        #expect(record.outcome == .rolledBack)
        #expect(record.id == "a1b2c3")
        #expect(record.failure == "reboot(LINUX_REBOOT_CMD_KEXEC): EIO")
        #expect(record.phases.map(\.name) == ["stop", "serialize", "preserve"])
        #expect(record.services.count == 2 && record.services.allSatisfy { !$0.back && $0.startedUs == nil })
        #expect(record.lostCount == 0 && record.settled && record.kernelAfter == nil)
    }
}
