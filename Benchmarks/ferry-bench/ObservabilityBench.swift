import FerrySystem
import LiveUpdateReports
import Observability

#if canImport(Glibc)
import Glibc
#endif

/// What the metrics and the history cost ferryd at each state change and each update: render
/// the exposition and replace the textfile atomically, next to a plain write of the same bytes
/// (the baseline: what any textfile writer pays at least), and save the history.
enum ObservabilityBench {
    static func measure(units: Int = 100, repetitions: Int = 500) {
        let sample = sampleRecord(units: units)
        var snapshot = MetricsSnapshot()
        snapshot.kexecs = 7
        snapshot.lastUpdate = sample
        for index in 0..<units { snapshot.storeEntries["unit\(index).service"] = 10 }
        // On disk (/var/tmp), not tmpfs: the fsyncs must cost what they cost on a host.
        var template = Array("/var/tmp/ferry-bench.XXXXXX".utf8CString)
        let folder = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let text = MetricsExposition.render(snapshot)
        let bytes = Array(text.utf8)

        let render = mean(repetitions) { _ = MetricsExposition.render(snapshot) }
        let atomic = mean(repetitions) { try? AtomicFile.write(bytes, to: "\(folder)/ferry.prom") }
        let plain = mean(repetitions) {
            let fd = open("\(folder)/plain.prom", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            let owned = OwnedFD(adopting: fd)
            try? FileIO.writeAll(owned.borrowed, bytes)
        }
        var history = UpdateHistory()
        for index in 0..<UpdateHistory.recordLimit {
            var next = sample
            next.id = "u\(index)"
            history.record(next)
        }
        let store = HistoryStore(folder: "\(folder)/state")
        let firstSave = mean(1) { try? store.save(history) }
        var changed = history.updates[history.updates.count - 1]
        changed.settled.toggle()
        history.record(changed)
        let nextSave = mean(20) { try? store.save(history) }
        let fileSize = FileIO.text(ofFile: store.path, limit: 1 << 22)?.utf8.count ?? 0

        print("metrics and history: \(units) units with stores, last update of \(units) services, \(repetitions) repetitions (mean)")
        print("| measurement | µs |")
        print("|---|---|")
        print("| render the exposition (\(bytes.count) bytes) | \(render) |")
        print("| plain write of those bytes (baseline: open, write, close) | \(plain) |")
        print("| atomic replace (temporary file, fsync, rename, fsync folder) | \(atomic) |")
        print("| history save, first (\(history.updates.count) records, \(fileSize) bytes) | \(firstSave) |")
        print("| history save, one record changed | \(nextSave) |")
        _ = ferry_bench.run(["/bin/rm", "-rf", folder])
    }

    static func sampleRecord(units: Int) -> UpdateRecord {
        var update = LiveUpdateReport(sessionName: "ferry", rehearsal: true)
        update.id = "bench"
        update.startedAt = WallClock.microseconds()
        update.kernelBefore = KernelRelease.current()
        update.stops = (0..<units).map { .init(unit: "unit\($0).service", stoppedUs: UInt64(1000 + $0)) }
        update.preserved = (0..<units).map { .init(unit: "unit\($0).service", name: "state", type: "fd", token: UInt64($0 + 1)) }
        for (keyPath, value) in [(\LiveUpdateTimings.stop, 5000), (\.serialize, 100), (\.preserve, 900)] as [(WritableKeyPath<LiveUpdateTimings, UInt64?>, UInt64)] {
            update.timings[keyPath: keyPath] = value
        }
        var restore = RestoreReport()
        restore.found = true
        restore.update = update
        restore.timings = update.timings
        restore.timings.kexec = 20_000
        restore.timings.restore = 3000
        restore.timings.ready = 1000
        restore.restored = update.preserved
        restore.services = (0..<units).map {
            var start = RestoreReport.ServiceStart(unit: "unit\($0).service", startedUs: UInt64($0))
            start.readyUs = UInt64(1000 + $0)
            return start
        }
        return UpdateRecord(restore: restore, kernelAfter: KernelRelease.current(), id: "bench")
    }

    /// Mean microseconds of `count` runs of `body`.
    static func mean(_ count: Int, _ body: () -> Void) -> Int {
        let start = MonotonicClock.microseconds()
        for _ in 0..<count { body() }
        return Int((MonotonicClock.microseconds() - start) / UInt64(max(1, count)))
    }
}
