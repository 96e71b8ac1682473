import LiveUpdateReports

/// Reports as two ferryds would write them for one update: the old side (stop, preserve) and
/// the new side (restore, units ready).
enum Samples {
    static func update(id: String = "a1b2c3", units: [String] = ["db.service", "vmm.service"]) -> LiveUpdateReport {
        var report = LiveUpdateReport(sessionName: "ferry", rehearsal: true)
        report.id = id
        report.startedAt = 1_772_366_405_000_000
        report.kernelBefore = "7.2.13-old"
        report.stops = units.enumerated().map { .init(unit: $0.element, stoppedUs: UInt64(1000 * ($0.offset + 1))) }
        report.timings.stop = 4000
        report.timings.serialize = 100
        report.timings.preserve = 900
        for unit in units {
            report.preserved.append(.init(unit: unit, name: "state", type: "fd", token: 1))
            report.preserved.append(.init(unit: unit, name: "guest", type: "luo_session", sessionName: "\(unit)-guest"))
        }
        report.lose(.init(unit: "cache.service", name: nil, count: 3, reason: .preserveMode,
                          detail: "unit cache.service: 3 stored fd(s) not carried (FileDescriptorStorePreserve=restart)"))
        return report
    }

    /// The restore of `update`, every unit ready unless listed in `notReady`; `dropped` fds did not come back.
    static func restore(of update: LiveUpdateReport, notReady: Set<String> = [], dropped: Set<String> = []) -> RestoreReport {
        var restore = RestoreReport()
        restore.found = true
        restore.kexecCount = 1
        restore.update = update
        restore.timings = update.timings
        restore.timings.kexec = 20_000
        restore.timings.restore = 3000
        restore.timings.ready = 2000
        restore.restored = update.preserved.filter { !dropped.contains($0.unit) }
        restore.services = (update.stops ?? []).enumerated().map { index, stop in
            var start = RestoreReport.ServiceStart(unit: stop.unit, startedUs: UInt64(100 * index))
            if !notReady.contains(stop.unit) { start.readyUs = UInt64(2000 + 1000 * index) }
            return start
        }
        return restore
    }

    static func record(id: String = "a1b2c3", units: [String] = ["db.service", "vmm.service"]) -> UpdateRecord {
        UpdateRecord(restore: restore(of: update(id: id, units: units)), kernelAfter: "7.2.14-new", id: "unused")
    }
}
