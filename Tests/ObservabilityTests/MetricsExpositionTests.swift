import FerryTestSupport
import LiveUpdateReports
import Observability
import Testing

/// The exposition is checked by Prometheus's own linter, and its values against the record.
@Suite struct MetricsExpositionTests {
    static func snapshot(_ record: UpdateRecord?) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.kexecs = 3
        var history = UpdateHistory()
        if let record { history.record(record) }
        snapshot.totals = history.totals
        snapshot.lastUpdate = record
        snapshot.storeEntries = ["db.service": 2, "odd\"name\\.service": 1]
        snapshot.sessionsHeld = 2
        snapshot.incomingSessionsHeld = 1
        return snapshot
    }

    @Test func promtoolAcceptsIt() throws {
        for record in [Samples.record(), nil] {
            let text = MetricsExposition.render(Self.snapshot(record))
            let check = try Promtool.check(text)
            #expect(check.status == 0, "promtool: \(check.output)\n\(text)")
            #expect(check.output.isEmpty, "promtool: \(check.output)")
        }
    }

    @Test func valuesFollowTheRecord() throws {
        let samples = Promtool.samples(MetricsExposition.render(Self.snapshot(Samples.record())))
        #expect(samples["ferry_kexecs_total"] == 3)
        #expect(samples["ferry_live_updates_total{result=\"succeeded\"}"] == 1)
        #expect(samples["ferry_live_updates_total{result=\"rolled_back\"}"] == 0)
        #expect(samples["ferry_last_update_blackout_seconds"] == 0.03)
        #expect(samples["ferry_last_update_phase_seconds{phase=\"kexec\"}"] == 0.02)
        #expect(samples["ferry_last_update_service_blackout_seconds{unit=\"db.service\"}"] == 0.03)
        #expect(samples["ferry_last_update_service_blackout_seconds{unit=\"vmm.service\"}"] == 0.031)
        #expect(samples["ferry_last_update_fds_carried"] == 4)
        #expect(samples["ferry_last_update_fds_lost{reason=\"not_restored\"}"] == 0)
        #expect(samples["ferry_last_update_result{result=\"succeeded\"}"] == 1)
        #expect(samples["ferry_unit_fd_store_entries{unit=\"db.service\"}"] == 2)
        #expect(samples["ferry_unit_fd_store_entries{unit=\"odd\\\"name\\\\.service\"}"] == 1)
        #expect(samples["ferry_luo_sessions_held"] == 2)
        #expect(samples["ferry_luo_incoming_sessions_held"] == 1)
        // preserve_mode is the configuration's choice: never a lost-fd series.
        #expect(!samples.keys.contains { $0.contains("preserve_mode") })
    }

    @Test func aServiceOfAnEarlierUpdateLeavesNoSeries() {
        let text = MetricsExposition.render(Self.snapshot(Samples.record(units: ["web.service"])))
        #expect(text.contains("unit=\"web.service\""))
        #expect(!text.contains("unit=\"vmm.service\""))
    }

    @Test func lossesAreCountedByReason() {
        let update = Samples.update()
        let record = UpdateRecord(restore: Samples.restore(of: update, dropped: ["vmm.service"]), kernelAfter: "k", id: "x")
        let samples = Promtool.samples(MetricsExposition.render(Self.snapshot(record)))
        #expect(samples["ferry_last_update_fds_lost{reason=\"not_restored\"}"] == 2)
        #expect(samples["ferry_live_update_fds_lost_total{reason=\"not_restored\"}"] == 2)
        #expect(samples["ferry_last_update_fds_carried"] == 2)
    }
}
