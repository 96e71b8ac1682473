import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 9, point 2: ferryd SIGKILLed at each step of a rehearsed live update (prepare) and of the
/// restore that follows; a fresh ferryd on the same folders gets every stored byte back from the
/// keeper, leaks no fd, and the keeper exits once the work is done.
@Suite struct FerrydCrashDuringUpdateTests {
    /// Two units, each with two memfds and a LUO session of its own: four fds to preserve.
    static let prepareSteps = ["load", "stop", "stopped", "serialize", "preserve-session",
                               "preserve-1", "preserve-2", "preserve-3", "preserve-4", "mapping", "handover"]
    static let restoreSteps = ["retrieve-session", "retrieve-fd-1", "retrieve-fd-2", "retrieve-fd-3", "retrieve-fd-4",
                               "finish", "finished"]

    @Test(arguments: prepareSteps + restoreSteps)
    func aCrashAtAnyStepLosesNothing(step: String) throws {
        try withEmulator { emulator in
            let arguments = ["--liveupdate-emulator", emulator.socketPath]
            let first = try FerrydInstance(units: [:], extraArguments: arguments, environment: ["FERRYD_TEST_DIE_AT=\(step)"])
            let units = ["alpha", "beta"]
            for unit in units {
                first.writeUnit("\(unit).service", LiveUpdateScenarioTests.testUnit("store", prefix: unit))
                #expect(try first.start("\(unit).service") == "inactive (dead-resources-pinned)", "\(first.log)")
            }
            let stored = try units.map { try first.storeNames("\($0).service").sorted() }
            _ = first.settledDescriptors()
            let descriptorsBefore = first.descriptorKinds()

            _ = try? first.call("Kexec", ["rehearse": .bool(true)])
            #expect(first.exitStatus() == 128 + SIGKILL)
            #expect(first.log.contains("dying at step '\(step)'"), "\(first.log)")

            let second = try FerrydInstance(restartingAfter: first, extraArguments: arguments)
            #expect(second.waitUntil { keepers(of: second).isEmpty }, "the keeper is still there: \(first.log)\n\(second.log)")
            #expect(try units.map { try second.storeNames("\($0).service").sorted() } == stored, "\(second.log)")
            // Every fd the old ferryd held is back, and nothing more (no copy of the keeper's left over).
            _ = second.settledDescriptors()
            #expect(second.descriptorKinds() == descriptorsBefore, "\(second.log)")
            // Ferry's session is gone (rolled back, or restored and finished).
            #expect(second.waitUntil { try !EmulatorControl.status(socketPath: emulator.socketPath).contains("\"name\":\"ferry\"") })
            if Self.prepareSteps.contains(step) {
                // Rolled back: no kexec happened, so the units' sessions are still outgoing ones.
                // A clean update now carries everything to where the units can read it back.
                #expect(try LiveUpdateScenarioTests.rehearse(second)["restored"]?.array?.count == 6, "\(second.log)")
                #expect(second.waitUntil { keepers(of: second).isEmpty }, "\(second.log)")
            }

            // Every byte: each unit reads its memfds and its own LUO session's memfd back.
            for unit in units {
                second.writeUnit("\(unit).service", LiveUpdateScenarioTests.testUnit("check", prefix: unit))
            }
            #expect(try second.call("Reload").error == nil)
            for unit in units {
                #expect(try second.start("\(unit).service") == "inactive (dead)", "\(second.log)")
                #expect(second.log.contains("test-service check \(unit): ok"), "\(second.log)")
            }
        }
    }

    /// Batches of fds (more than one SCM_RIGHTS message), and a second crash while the restarted
    /// ferryd carries on: the third ferryd still gets everything.
    @Test func aCrashWhileCarryingOnIsCoveredToo() throws {
        try withEmulator { emulator in
            let arguments = ["--liveupdate-emulator", emulator.socketPath]
            let first = try FerrydInstance(units: [:], extraArguments: arguments, environment: ["FERRYD_TEST_DIE_AT=retrieve-fd-300"])
            first.writeUnit("bulk.service", LiveUpdateScenarioTests.testUnit("store-many", prefix: "450", max: 500))
            #expect(try first.start("bulk.service") == "inactive (dead-resources-pinned)", "\(first.log)")
            #expect(try first.fdStore("bulk.service").count == 450)
            _ = try? first.call("Kexec", ["rehearse": .bool(true)])
            #expect(first.exitStatus() == 128 + SIGKILL)

            let second = try FerrydInstance(restartingAfter: first, extraArguments: arguments,
                                            environment: ["FERRYD_TEST_DIE_AT=retrieve-fd-100"], awaitingAnswer: false)
            #expect(second.exitStatus() == 128 + SIGKILL)
            #expect(second.log.contains("carrying on from there"), "\(second.log)")

            let third = try FerrydInstance(restartingAfter: first, extraArguments: arguments)
            #expect(third.waitUntil { keepers(of: third).isEmpty }, "\(third.log)")
            #expect(try third.fdStore("bulk.service").count == 450, "\(third.log)")
            third.writeUnit("bulk.service", LiveUpdateScenarioTests.testUnit("check-many", prefix: "450", max: 500))
            #expect(try third.call("Reload").error == nil)
            _ = try third.start("bulk.service")
            #expect(third.waitUntil { third.log.contains("test-service check-many 450: ok") }, "\(third.log)")
        }
    }

    /// The issue's run: 3,009 stored fds, ferryd killed while preserving. All 3,009 come back
    /// (rolled back), and a clean update then carries every one to where the unit reads it.
    @Test func threeThousandFdsSurviveACrashWhilePreserving() throws {
        try withEmulator { emulator in
            let arguments = ["--liveupdate-emulator", emulator.socketPath]
            let first = try FerrydInstance(units: [:], extraArguments: arguments, environment: ["FERRYD_TEST_DIE_AT=preserve-1500"])
            first.writeUnit("bulk.service", LiveUpdateScenarioTests.testUnit("store-many", prefix: "3009", max: 3100))
            #expect(try first.start("bulk.service") == "inactive (dead-resources-pinned)", "\(first.log)")
            _ = try? first.call("Kexec", ["rehearse": .bool(true)])
            #expect(first.exitStatus() == 128 + SIGKILL)
            #expect(first.log.contains("dying at step 'preserve-1500'"))

            let second = try FerrydInstance(restartingAfter: first, extraArguments: arguments)
            #expect(second.waitUntil(seconds: 60) { keepers(of: second).isEmpty }, "\(second.log)")
            #expect(try second.fdStore("bulk.service").count == 3009, "\(second.log)")
            #expect(try LiveUpdateScenarioTests.rehearse(second)["restored"]?.array?.count == 3009)
            second.writeUnit("bulk.service", LiveUpdateScenarioTests.testUnit("check-many", prefix: "3009", max: 3100))
            #expect(try second.call("Reload").error == nil)
            _ = try second.start("bulk.service")
            #expect(second.waitUntil(seconds: 60) { second.log.contains("test-service check-many 3009: ok") }, "\(second.log)")
        }
    }

    /// Without a crash the keeper is there only while the update runs: after a rehearsal and after a
    /// rollback it is gone, and the rollback's partial session with it.
    @Test(.needs(.pythonSystemd)) func withoutACrashTheKeeperLeavesWhenTheUpdateIsDone() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath],
                                            environment: ["FERRYD_TEST_FAIL_REBOOT=EIO"])
            ferryd.writeUnit("keep.service", toolUnit("store data precious barrier ready sleep"))
            _ = try ferryd.start("keep.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("keep.service") == ["data"] })
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            #expect(ferryd.log.contains("keeper (pid"), "\(ferryd.log)")
            #expect(ferryd.waitUntil { keepers(of: ferryd).isEmpty }, "\(ferryd.log)")
            #expect(ferryd.log.contains("the keeper let go of its copies and exited"))
            #expect(try !EmulatorControl.status(socketPath: emulator.socketPath).contains("\"name\":\"ferry\""))
            #expect(try ferryd.storeNames("keep.service").contains("data"))
        }
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("test.service", LiveUpdateScenarioTests.testUnit("store", prefix: "test"))
            _ = try ferryd.start("test.service")
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            #expect(ferryd.waitUntil { keepers(of: ferryd).isEmpty }, "\(ferryd.log)")
            #expect(try ferryd.fdStore("test.service").count == 3)
        }
    }
}

extension FerrydCrashDuringUpdateTests {
    /// A waiting keeper turns away what is not a well-formed request (not JSON, fds that do not
    /// match the items, unknown requests) and closes the fds that came with it; what it holds is
    /// intact for the next ferryd.
    @Test func aWaitingKeeperShrugsOffBadPacketsWithoutLeaking() throws {
        try withEmulator { emulator in
            let arguments = ["--liveupdate-emulator", emulator.socketPath]
            let first = try FerrydInstance(units: [:], extraArguments: arguments, environment: ["FERRYD_TEST_DIE_AT=mapping"])
            first.writeUnit("alpha.service", LiveUpdateScenarioTests.testUnit("store", prefix: "alpha"))
            _ = try first.start("alpha.service")
            _ = try? first.call("Kexec", ["rehearse": .bool(true)])
            #expect(first.exitStatus() == 128 + SIGKILL)
            let keeper = try #require(keepers(of: first).first)
            let before = descriptorCount(of: keeper)

            let socket = try UnixSocket.connect(path: "\(first.directory.path)/run/keeper", kind: .sequentialPacket)
            var junk = OwnedFDs()
            junk.append(try Memfd.create(name: "junk", contents: [1]))
            junk.append(try Memfd.create(name: "junk", contents: [2]))
            let memfds = junk.rawValues
            try UnixSocket.send(socket.borrowed, Array("not json".utf8), descriptors: memfds)
            try UnixSocket.send(socket.borrowed, Array(#"{"op":"hold","items":[{"kind":"store","unit":"x.service","name":"a"}]}"#.utf8),
                                descriptors: memfds)
            try UnixSocket.send(socket.borrowed, Array(#"{"op":"hold","items":[{"kind":"bogus","name":"a"}]}"#.utf8),
                                descriptors: [memfds[0]])
            try UnixSocket.send(socket.borrowed, Array(#"{"op":"forget"}"#.utf8))
            try UnixSocket.send(socket.borrowed, Array(#"{"op":"explode"}"#.utf8), descriptors: [memfds[1]])
            // A sync answers once all of the above is done.
            try UnixSocket.send(socket.borrowed, Array(#"{"op":"sync"}"#.utf8))
            let reply = try UnixSocket.receive(socket.borrowed, maximumBytes: 4096, maximumDescriptors: 4)
            #expect(String(decoding: reply.bytes, as: UTF8.self).contains("synced"))
            #expect(descriptorCount(of: keeper) == before + 1, "only the connection itself")
            #expect(first.log.contains("ignoring a packet from ferryd"), "\(first.log)")
            _ = consume socket

            let second = try FerrydInstance(restartingAfter: first, extraArguments: arguments)
            #expect(second.waitUntil { keepers(of: second).isEmpty }, "\(second.log)")
            #expect(try second.fdStore("alpha.service").count == 3, "\(second.log)")
        }
    }

    /// What a unit stores as it stops (its state, on SIGTERM) reaches the keeper at once: ferryd
    /// dying after the stop and before serialize loses none of it, and the unit starts again with it.
    @Test(.needs(.pythonSystemd)) func whatAUnitStoresWhileStoppingIsKeptToo() throws {
        try withEmulator { emulator in
            let arguments = ["--liveupdate-emulator", emulator.socketPath]
            let first = try FerrydInstance(units: [:], extraArguments: arguments, environment: ["FERRYD_TEST_DIE_AT=stopped"])
            let report = "\(first.directory.path)/report.json"
            first.writeUnit("cache.service", toolUnit("report \(report) store early kept storeonterm late state-at-stop barrier ready sleep"))
            _ = try first.start("cache.service")
            #expect(first.waitUntil { try first.storeNames("cache.service") == ["early"] })
            _ = try? first.call("Kexec", ["rehearse": .bool(true)])
            #expect(first.exitStatus() == 128 + SIGKILL)
            #expect(first.log.contains("dying at step 'stopped'"), "\(first.log)")
            unlink(report)

            let second = try FerrydInstance(restartingAfter: first, extraArguments: arguments)
            #expect(second.waitUntil { keepers(of: second).isEmpty }, "\(second.log)")
            // The unit ran before the update: it started again, with both fds in LISTEN_FDS.
            #expect(second.waitUntil { Report.read(report)?.fds.contains { $0.name == "late" && $0.data == "state-at-stop" } == true },
                    "\(second.log)")
            #expect(Report.read(report)?.fds.contains { $0.name == "early" && $0.data == "kept" } == true)
        }
    }

    /// Stopped on purpose (SIGTERM) right after an update, ferryd lets its keeper go with it: no
    /// keeper outlives an orderly stop with copies nobody will ask for.
    @Test func anOrderlyStopLetsTheKeeperGo() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("test.service", LiveUpdateScenarioTests.testUnit("store", prefix: "test"))
            _ = try ferryd.start("test.service")
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            ferryd.child.kill(SIGTERM)
            #expect(ferryd.exitStatus() == 0)
            #expect(keepers(of: ferryd).isEmpty, "\(ferryd.log)")
        }
    }

    private func descriptorCount(of pid: pid_t) -> Int {
        guard let folder = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(folder) }
        var count = 0
        while readdir(folder) != nil { count += 1 }
        return count - 2
    }
}

/// Keeper processes serving `ferryd`'s runtime folder that have not exited (zombies count as gone).
func keepers(of ferryd: FerrydInstance) -> [pid_t] {
    let socket = "\(ferryd.directory.path)/run/keeper"
    guard let folder = opendir("/proc") else { return [] }
    defer { closedir(folder) }
    var found: [pid_t] = []
    while let entry = readdir(folder) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = pid_t(name) else { continue }
        let arguments = readText("/proc/\(pid)/cmdline").split(separator: "\0").map(String.init)
        guard arguments.count >= 3, arguments[1] == "--keeper", arguments[2] == socket else { continue }
        let stat = readText("/proc/\(pid)/stat")
        if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { continue }
        found.append(pid)
    }
    return found
}

extension FerrydInstance {
    /// ferryd's exit status (128 + signal when killed) once it has ended; nil if it still runs after `seconds`.
    func exitStatus(seconds: Double = 60) -> CInt? {
        let deadline = MonotonicClock.now() + .milliseconds(Int64(seconds * 1000))
        var status: CInt = 0
        while MonotonicClock.now() < deadline {
            let reaped = waitpid(child.pid, &status, WNOHANG)
            if reaped == child.pid { return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F) }
            if reaped < 0 { return nil }
            usleep(20_000)
        }
        return nil
    }
}

extension FerrydInstance {
    /// What each of ferryd's fds is, sorted: the /proc/PID/fd link without inode numbers, its
    /// output file as "output", a memfd without its name (a kexec loses names). Pipes are left out:
    /// units that have run keep their output pipes, units not yet started have none.
    func descriptorKinds() -> [String] {
        guard let folder = opendir("/proc/\(child.pid)/fd") else { return [] }
        defer { closedir(folder) }
        var kinds: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int(name) != nil else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = readlink("/proc/\(child.pid)/fd/\(name)", &buffer, buffer.count)
            let target = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
            let kind = target == child.outputPath ? "output" : target.hasPrefix("/memfd:") ? "memfd"
                : target.split(separator: ":[").first.map(String.init) ?? target
            if kind != "pipe" { kinds.append(kind) }
        }
        return kinds.sorted()
    }
}
