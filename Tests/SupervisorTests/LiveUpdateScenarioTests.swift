import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// reference-systemd.md §6 against the emulator: ferryd, real services, rehearsed live updates.
@Suite struct LiveUpdateScenarioTests {
    /// A unit running `ferryctl test-service`.
    static func testUnit(_ mode: String, prefix: String = "", max: Int = 20, extra: String = "") -> String {
        """
        [Service]
        Type=oneshot
        RemainAfterExit=no
        ExecStart=\(ferryctlPath) test-service \(mode) \(prefix)
        FileDescriptorStoreMax=\(max)
        FileDescriptorStorePreserve=yes
        NotifyAccess=all
        \(extra)
        """
    }

    /// Rehearses a live update and waits for the new ferryd's restore report.
    static func rehearse(_ ferryd: FerrydInstance) throws -> [String: JSONValue] {
        let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
        try #require(reply.error == nil, "\(reply.parameters)")
        var restore: [String: JSONValue] = [:]
        let done = ferryd.waitUntil(seconds: 30) {
            guard let found = try ferryd.call("GetLiveUpdate").parameters["restore"]?.object,
                found["found"]?.bool == true
            else { return false }
            restore = found
            return true
        }
        try #require(done, "ferryd did not come back: \(ferryd.log)")
        return restore
    }

    @Test func fullScenario() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("test.service", Self.testUnit("store"))
            ferryd.writeUnit("hijack.service", Self.testUnit("store-hijack"))
            for late in ["late", "late-noreload", "late-zerofds"] {
                ferryd.writeUnit("\(late).service", Self.testUnit("store", prefix: late))
            }
            for unit in ["test", "hijack", "late", "late-noreload", "late-zerofds"] {
                #expect(try ferryd.start("\(unit).service") == "inactive (dead-resources-pinned)", "\(unit): \(ferryd.log)")
            }
            #expect(try ferryd.fdStore("test.service").count == 3)
            #expect(try ferryd.fdStore("hijack.service").count == 1)
            // The late units' files disappear before the update: after it they are placeholders.
            for late in ["late", "late-noreload", "late-zerofds"] { unlink("\(ferryd.units)/\(late).service") }

            let restore = try Self.rehearse(ferryd)
            #expect(restore["kexecCount"]?.number == 1)
            #expect(try ferryd.call("GetManager").parameters["kexecCount"]?.number == 1)
            #expect(ferryd.log.contains("session 'ferry' infringes Ferry's namespace, dropped"))

            // The service-owned session and both memfds come back with their contents.
            ferryd.writeUnit("test.service", Self.testUnit("check"))
            ferryd.writeUnit("hijack.service", Self.testUnit("check-hijack"))
            #expect(try ferryd.call("Reload").error == nil)
            #expect(try ferryd.start("test.service") == "inactive (dead)", "\(ferryd.log)")
            #expect(ferryd.log.contains("test-service check luosession: ok"))

            // The hijacking session was neither carried nor restored.
            #expect(try ferryd.fdStore("hijack.service").isEmpty)
            #expect(try ferryd.start("hijack.service") == "inactive (dead)")

            // late: a placeholder with 3 entries; still 3 after its file appears, a reload and a re-exec.
            #expect(try ferryd.unit("late.service")["load"]?.string == "not-found")
            #expect(try ferryd.fdStore("late.service").count == 3)
            ferryd.writeUnit("late.service", Self.testUnit("check", prefix: "late"))
            #expect(try ferryd.call("Reload").error == nil)
            #expect(try ferryd.fdStore("late.service").count == 3)
            #expect(try ferryd.call("Reexecute").error == nil)
            #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
            #expect(try ferryd.fdStore("late.service").count == 3)
            #expect(try ferryd.start("late.service") == "inactive (dead)", "\(ferryd.log)")
            #expect(ferryd.log.contains("test-service check late: ok"))

            // late-noreload: the file appears, no reload; starting it loads it.
            #expect(try ferryd.fdStore("late-noreload.service").count == 3)
            ferryd.writeUnit("late-noreload.service", Self.testUnit("check", prefix: "late-noreload"))
            #expect(try ferryd.start("late-noreload.service") == "inactive (dead)")
            #expect(ferryd.log.contains("test-service check late-noreload: ok"))

            // late-zerofds: FileDescriptorStoreMax=0 drops everything; the service starts without fds.
            ferryd.writeUnit("late-zerofds.service", """
                [Service]
                Type=oneshot
                ExecStart=/bin/sh -c 'test "${LISTEN_FDS:-0}" -eq 0'
                FileDescriptorStoreMax=0
                """)
            #expect(try ferryd.call("Reload").error == nil)
            #expect(try ferryd.fdStore("late-zerofds.service").count == 0)
            #expect(try ferryd.start("late-zerofds.service") == "inactive (dead)")
            #expect(ferryd.log.contains("late-zerofds.service: main process exited with status 0"))

            // A second update counts 2.
            let second = try Self.rehearse(ferryd)
            #expect(second["kexecCount"]?.number == 2)
        }
    }

    @Test(.needs(.pythonSystemd)) func rollbackAfterAFailedRebootLosesNothing() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath],
                                            environment: ["FERRYD_TEST_FAIL_REBOOT=EIO"])
            let report = "\(ferryd.directory.path)/after.json"
            ferryd.writeUnit("keep.service", toolUnit("report \(report) store data precious barrier ready sleep"))
            ferryd.writeUnit("restartmode.service", toolUnit("store r kept barrier ready sleep",
                                                             extra: "FileDescriptorStorePreserve=restart"))
            _ = try ferryd.start("keep.service")
            _ = try ferryd.start("restartmode.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("keep.service") == ["data"] })
            let firstPID = try ferryd.unit("keep.service")["mainPID"]?.number
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            let failure = reply.parameters["report"]?["failure"]?.string ?? ""
            #expect(failure.contains("injected"))
            // Everything is back: the units run again (new processes) with their stores intact.
            #expect(ferryd.waitUntil { try ferryd.state("keep.service") == "active (running)" })
            #expect(try ferryd.unit("keep.service")["mainPID"]?.number != firstPID)
            #expect(try ferryd.storeNames("keep.service").contains("data"))
            #expect(try ferryd.storeNames("restartmode.service").contains("r"))
            #expect(ferryd.waitUntil { Report.read(report)?.fds.contains { $0.name == "data" && $0.data == "precious" } == true })
            // Ferry's session was dropped: the emulator holds no outgoing session any more.
            let status = try EmulatorControl.status(socketPath: emulator.socketPath)
            #expect(!status.contains("\"name\":\"ferry\""), "\(status)")
            #expect(try ferryd.call("GetManager").parameters["kexecCount"]?.number == 0)
        }
    }

    /// The update runs on the event loop: while a unit takes its time to stop, ferryd still
    /// answers, shows the phase, and refuses changes and a second update.
    @Test(.needs(.pythonSystemd)) func oneUpdateAtATimeWhileTheLoopKeepsServing() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("stubborn.service", toolUnit("store data kept barrier ignoreterm ready sleep",
                                                          extra: "TimeoutStopSec=4"))
            ferryd.writeUnit("other.service", toolUnit("ready sleep"))
            _ = try ferryd.start("stubborn.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("stubborn.service") == ["data"] })
            var first = try VarlinkClient(path: ferryd.control)
            try first.send(Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: ["rehearse": .bool(true)]))
            #expect(ferryd.waitUntil { try ferryd.call("GetManager").parameters["liveUpdatePhase"]?.string == "stop" })
            let second = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(second.error == "io.ferry.Manager.LiveUpdateInProgress")
            #expect(second.parameters["phase"]?.string == "stop")
            let start = try ferryd.call("StartUnit", ["name": .string("other.service")])
            #expect(start.error == "io.ferry.Manager.LiveUpdateInProgress")
            #expect(try ferryd.state("other.service") == "inactive (dead)")
            // The first request goes through once the stubborn unit is killed after its timeout.
            let reply = try first.receiveReply()
            #expect(reply.error == nil, "\(reply.parameters)")
            #expect(ferryd.waitUntil(seconds: 30) {
                try ferryd.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true
            })
            // The restored fd is there (the unit, started again, may have stored a second one).
            #expect(Set(try ferryd.storeNames("stubborn.service")) == ["data"])
            #expect(try ferryd.call("GetManager").parameters["liveUpdatePhase"] == .null)
        }
    }

    /// A socket that merely looks like an emulator session named after another unit's session
    /// is not a session: the victim gets its own session back, the forger gets nothing.
    @Test(.needs(.pythonSystemd)) func aForgedSessionIsNotASession() throws {
        try withEmulator { emulator in
            // The emulator's server id, as any client of it can read it from the device's peer address.
            var device = try EmulatorControl.call(socketPath: emulator.socketPath, EmulatorWire.Request(kind: .openDevice))
            let address = try UnixSocket.peerAddress(FileDescriptor(rawValue: device.descriptors.rawValues[0]))
            _ = device.descriptors.take(at: 0)
            let server = try #require(EmulatorAddress.parse(address)?.server)
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("victim.service", Self.testUnit("store", prefix: "victim"))
            ferryd.writeUnit("forger.service", toolUnit("forge-session victim-direct \(server) barrier ready sleep"))
            #expect(try ferryd.start("victim.service") == "inactive (dead-resources-pinned)", "\(ferryd.log)")
            #expect(try ferryd.start("forger.service") == "active (running)")
            #expect(try ferryd.storeNames("forger.service") == ["victim-direct"])
            let restore = try Self.rehearse(ferryd)
            // Nothing came back to the forger (it may store a new forgery once it runs again).
            let restored = restore["restored"]?.array ?? []
            #expect(!restored.contains { $0["unit"]?.string == "forger.service" }, "\(restored)")
            #expect(restored.contains { $0["unit"]?.string == "victim.service" && $0["sessionName"]?.string == "victim-direct" })
            ferryd.writeUnit("victim.service", Self.testUnit("check", prefix: "victim"))
            _ = try ferryd.call("Reload")
            #expect(try ferryd.start("victim.service") == "inactive (dead)", "\(ferryd.log)")
        }
    }

    @Test(.needs(.pythonSystemd)) func aKernelThatDoesNotLoadIsRefusedBeforeStoppingAnything() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("up.service", toolUnit("ready sleep"))
        _ = try ferryd.start("up.service")
        let reply = try ferryd.call("Kexec", ["kernel": .string("/nonexistent/bzImage")])
        #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
        #expect(reply.parameters["report"]?["failure"]?.string?.contains("open(/nonexistent/bzImage)") == true)
        #expect(try ferryd.state("up.service") == "active (running)")
    }
}
