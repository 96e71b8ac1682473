import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The history, the metrics and the timeline of rehearsed live updates, with a real ferryd,
/// real services and the real ferryctl, against the emulator.
@Suite struct ObservabilityScenarioTests {
    /// The newest history record once every unit started after the update is ready or failed.
    static func settledLastUpdate(_ ferryd: FerrydInstance, id notID: String? = nil) throws -> [String: JSONValue] {
        var record: [String: JSONValue] = [:]
        let settled = ferryd.waitUntil(seconds: 30) {
            guard let last = try ferryd.call("io.ferry.Observe.GetLastUpdate").parameters["update"]?.object,
                last["settled"]?.bool == true, last["id"]?.string != notID
            else { return false }
            record = last
            return true
        }
        try #require(settled, "no settled record: \(ferryd.log)")
        return record
    }

    static func ferryctl(_ ferryd: FerrydInstance, _ arguments: [String]) throws -> (status: CInt, output: String) {
        let child = try Child.spawn([ferryctlPath] + arguments + ["--control", ferryd.control])
        let status = child.wait()
        return (status, child.output)
    }

    static func units(_ ferryd: FerrydInstance) throws {
        ferryd.writeUnit("keep.service", toolUnit("store data kept barrier ready sleep"))
        ferryd.writeUnit("plain.service", toolUnit("ready sleep"))
        _ = try ferryd.start("keep.service")
        _ = try ferryd.start("plain.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("keep.service") == ["data"] })
    }

    @Test func metricsAndTimelineOfARehearsedUpdate() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            try Self.units(ferryd)
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            let record = try Self.settledLastUpdate(ferryd)
            #expect(record["outcome"]?.string == "succeeded")
            #expect(record["kexecCount"]?.number == 1)
            #expect(record["carriedCount"]?.number == 1)
            #expect(record["lostCount"]?.number == 0)
            let services = record["services"]?.array ?? []
            #expect(services.compactMap { $0["unit"]?.string }.sorted() == ["keep.service", "plain.service"])
            #expect(services.allSatisfy { $0["back"]?.bool == true })
            let phases = (record["phases"]?.array ?? []).compactMap { $0["name"]?.string }
            #expect(phases == ["stop", "serialize", "preserve", "kexec", "restore", "ready"])

            // The file node_exporter reads: accepted by promtool, values from this update.
            var file: [String: Double] = [:]
            #expect(ferryd.waitUntil {
                file = Promtool.samples(readText(ferryd.metricsFile))
                return file["ferry_last_update_service_blackout_seconds{unit=\"keep.service\"}"] != nil
                    && file["ferry_last_update_service_blackout_seconds{unit=\"plain.service\"}"] != nil
            }, "\(readText(ferryd.metricsFile))")
            let check = try Promtool.check(readText(ferryd.metricsFile))
            #expect(check.status == 0 && check.output.isEmpty, "\(check.output)")
            #expect(file["ferry_kexecs_total"] == 1)
            #expect(file["ferry_live_updates_total{result=\"succeeded\"}"] == 1)
            #expect(file["ferry_live_updates_total{result=\"rolled_back\"}"] == 0)
            #expect(file["ferry_last_update_fds_carried"] == 1)
            #expect(file["ferry_live_update_fds_carried_total"] == 1)
            #expect(file["ferry_last_update_services_not_back"] == 0)
            #expect(file["ferry_unit_fd_store_entries{unit=\"keep.service\"}"] ?? 0 >= 1)
            let keep = services.first { $0["unit"]?.string == "keep.service" }
            #expect(file["ferry_last_update_service_blackout_seconds{unit=\"keep.service\"}"] == (keep?["readyUs"]?.number).map { $0 / 1e6 })
            let kexec = (record["phases"]?.array ?? []).first { $0["name"]?.string == "kexec" }
            #expect(file["ferry_last_update_phase_seconds{phase=\"kexec\"}"] == (kexec?["durationUs"]?.number).map { $0 / 1e6 })

            // ferryctl metrics prints the same series with the same values.
            let printed = try Self.ferryctl(ferryd, ["metrics"])
            #expect(printed.status == 0)
            #expect(Promtool.samples(printed.output) == Promtool.samples(readText(ferryd.metricsFile)))

            // The picture: well-formed, one bar per service.
            let svg = "\(ferryd.directory.path)/timeline.svg"
            #expect(try Self.ferryctl(ferryd, ["last-update", "--svg", svg]).status == 0)
            let picture = readText(svg)
            #expect(try XML.isWellFormed(picture))
            #expect(picture.components(separatedBy: "<g class=\"service\"").count - 1 == 2)

            // --json is the record itself.
            let json = try Self.ferryctl(ferryd, ["last-update", "--json"])
            #expect(JSONValue.parse(Array(json.output.utf8))?["id"] == record["id"])
        }
    }

    /// The history outlives a daemon-reexec (the state folder) and a kexec whose disk did not
    /// survive (carried in the mapping's state.ferry).
    @Test func historySurvivesAReexecAndAKexecWithoutItsDisk() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            try Self.units(ferryd)
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            let first = try #require(try Self.settledLastUpdate(ferryd)["id"]?.string)

            #expect(try ferryd.call("Reexecute").error == nil)
            #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
            let afterReexec = try ferryd.call("io.ferry.Observe.GetHistory").parameters
            #expect(afterReexec["updates"]?.array?.compactMap { $0["id"]?.string } == [first])

            // As on an initramfs: the disk does not come along; the mapping does.
            #expect(unlink("\(ferryd.stateDirectory)/history.json") == 0)
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            let second = try #require(try Self.settledLastUpdate(ferryd, id: first)["id"]?.string)
            let history = try ferryd.call("io.ferry.Observe.GetHistory").parameters
            #expect(history["updates"]?.array?.compactMap { $0["id"]?.string } == [first, second])
            #expect(history["totals"]?["updates"]?["succeeded"]?.number == 2)
            #expect(ferryd.waitUntil {
                JSONValue.parse(Array(readText("\(ferryd.stateDirectory)/history.json").utf8))?["updates"]?.array?.count == 2
            })
            let table = try Self.ferryctl(ferryd, ["history"])
            #expect(table.output.contains(first) && table.output.contains(second), "\(table.output)")
        }
    }

    /// A rollback is in the history and the metrics; with stderr on the journal every line
    /// carries its priority and the update leaves one summary line.
    @Test func aRollbackIsRecordedAndSummarisedForTheJournal() throws {
        try withEmulator { emulator in
            let output = "/tmp/ferry-journal-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
            defer { unlink(output) }
            let stream = try Self.createFile(output)
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath],
                                            environment: ["FERRYD_TEST_FAIL_REBOOT=EIO", "JOURNAL_STREAM=\(stream)"],
                                            outputPath: output)
            try Self.units(ferryd)
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            let record = try Self.settledLastUpdate(ferryd)
            #expect(record["outcome"]?.string == "rolled-back")
            #expect(record["failure"]?.string?.contains("EIO") == true)
            #expect(ferryd.waitUntil {
                let samples = Promtool.samples(readText(ferryd.metricsFile))
                return samples["ferry_live_updates_total{result=\"rolled_back\"}"] == 1
                    && samples["ferry_last_update_result{result=\"rolled_back\"}"] == 1
            })
            #expect(try Promtool.check(readText(ferryd.metricsFile)).status == 0)

            let lines = ferryd.log.split(separator: "\n")
            let summary = lines.filter { $0.contains("live update \(record["id"]?.string ?? "?") rolled back") }
            #expect(summary.count == 1 && summary.first?.hasPrefix("<4>") == true, "\(ferryd.log)")
            #expect(lines.contains { $0.hasPrefix("<6>") } && lines.contains { $0.hasPrefix("<7>") })
            #expect(!lines.contains { $0.hasPrefix("ferryd[") }, "\(ferryd.log)")
        }
    }

    /// JOURNAL_STREAM naming another file (inherited from a parent whose stderr was the journal)
    /// must not add prefixes to this stderr.
    @Test func aJournalStreamOfAnotherFileIsIgnored() throws {
        let other = "/tmp/ferry-other-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(other) }
        let stream = try Self.createFile(other)
        let ferryd = try FerrydInstance(units: [:], environment: ["JOURNAL_STREAM=\(stream)"])
        #expect(ferryd.waitUntil { ferryd.log.contains("started") })
        #expect(ferryd.log.split(separator: "\n").allSatisfy { !$0.hasPrefix("<") }, "\(ferryd.log)")
        #expect(ferryd.log.contains("ferryd[\(ferryd.child.pid)]: info: ferryd"))
    }

    /// Creates an empty file and returns its `DEVICE:INODE`, as systemd writes JOURNAL_STREAM.
    static func createFile(_ path: String) throws -> String {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        let owned = OwnedFD(adopting: fd)
        let key = try FileIdentity.inode(owned.borrowed)
        return "\(key.device):\(key.inode)"
    }
}
