import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateReports
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The prepare barrier (X-FerryPrepare=yes): units are asked before anything is stopped, and a
/// refusal or a missed deadline abandons the update with nothing lost and nothing restarted.
@Suite struct PrepareBarrierTests {
    static func preparing(_ answer: String, log: String, stores: String = "store data precious", extra: String = "") -> String {
        toolUnit("\(stores) prepare \(answer) \(log) barrier ready sleep", extra: "X-FerryPrepare=yes\n\(extra)")
    }

    /// The lines a unit's `prepare` action wrote (prepare, resume).
    static func lines(_ path: String) -> [String] {
        readText(path).split(separator: "\n").map(String.init)
    }

    @Test(.needs(.pythonSystemd)) func aRefusalRollsBackNamingTheUnitAndLosesNothing() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let vmLog = "\(ferryd.directory.path)/vm.log"
            let cacheLog = "\(ferryd.directory.path)/cache.log"
            ferryd.writeUnit("vm.service", Self.preparing("refuse:migrating-guest-3", log: vmLog))
            ferryd.writeUnit("cache.service", Self.preparing("ok", log: cacheLog, stores: "store c warm"))
            ferryd.writeUnit("plain.service", toolUnit("store p plain barrier ready sleep"))
            for unit in ["vm.service", "cache.service", "plain.service"] { _ = try ferryd.start(unit) }
            #expect(ferryd.waitUntil { try ferryd.storeNames("vm.service") == ["data"] && ferryd.storeNames("cache.service") == ["c"] })
            let pids = try ["vm.service", "cache.service", "plain.service"].map { try ferryd.unit($0)["mainPID"]?.number }

            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            let report = try #require(reply.parameters["report"]?.decode(LiveUpdateReport.self), "\(reply)")
            #expect(report.failure == "unit vm.service refused to prepare for the live update: migrating-guest-3")
            #expect(report.verdict == "failed")
            #expect(report.barrier?.first { $0.unit == "vm.service" }?.outcome == "refused")
            #expect(report.barrier?.first { $0.unit == "vm.service" }?.reason == "migrating-guest-3")
            // Nothing was stopped: the same processes run, each store whole, nothing preserved.
            #expect(try ["vm.service", "cache.service", "plain.service"].map { try ferryd.unit($0)["mainPID"]?.number } == pids)
            #expect(report.stops?.isEmpty != false)
            #expect(report.preserved.isEmpty)
            #expect(try ferryd.storeNames("vm.service") == ["data"])
            #expect(try ferryd.storeNames("cache.service") == ["c"])
            #expect(try ferryd.storeNames("plain.service") == ["p"])
            // Both units asked were told to resume; the one without X-FerryPrepare= was never asked.
            #expect(ferryd.waitUntil { Self.lines(vmLog) == ["prepare", "resume"] && Self.lines(cacheLog) == ["prepare", "resume"] })
            let status = try EmulatorControl.status(socketPath: emulator.socketPath)
            #expect(!status.contains("\"name\":\"ferry\""), "\(status)")
            #expect(try ferryd.call("GetManager").parameters["liveUpdatePhase"] == .null)
            #expect(try ferryd.call("GetManager").parameters["kexecCount"]?.number == 0)
        }
    }

    @Test(.needs(.pythonSystemd)) func aSilentUnitTimesOutWhileFerrydShowsTheBarrierPhase() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let log = "\(ferryd.directory.path)/slow.log"
            ferryd.writeUnit("slow.service", Self.preparing("silent", log: log, extra: "X-FerryPrepareTimeoutSec=2s"))
            _ = try ferryd.start("slow.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("slow.service") == ["data"] })
            let pid = try ferryd.unit("slow.service")["mainPID"]?.number
            var client = try VarlinkClient(path: ferryd.control)
            try client.send(Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: ["rehearse": .bool(true)]))
            // While it waits the loop serves: the phase shows, and changes are refused.
            #expect(ferryd.waitUntil { try ferryd.call("GetManager").parameters["liveUpdatePhase"]?.string == "barrier" })
            #expect(try ferryd.call("StopUnit", ["name": .string("slow.service")]).error == "io.ferry.Manager.LiveUpdateInProgress")
            let reply = try client.receiveReply()
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            let report = try #require(reply.parameters["report"]?.decode(LiveUpdateReport.self), "\(reply)")
            #expect(report.failure?.hasPrefix("unit slow.service did not answer the prepare request within 2") == true, "\(report.failure ?? "")")
            #expect(report.barrier?.map(\.outcome) == ["timeout"])
            #expect(try ferryd.unit("slow.service")["mainPID"]?.number == pid)
            #expect(try ferryd.storeNames("slow.service") == ["data"])
            #expect(ferryd.waitUntil { Self.lines(log) == ["prepare", "resume"] })
            #expect(!(try EmulatorControl.status(socketPath: emulator.socketPath)).contains("\"name\":\"ferry\""))
        }
    }

    @Test(.needs(.pythonSystemd)) func preparedUnitsLetTheUpdateGoOn() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let log = "\(ferryd.directory.path)/ok.log"
            let after = "\(ferryd.directory.path)/after.json"
            ferryd.writeUnit("ok.service", toolUnit("report \(after) store data precious prepare ok \(log) barrier ready sleep",
                                                    extra: "X-FerryPrepare=yes"))
            _ = try ferryd.start("ok.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("ok.service") == ["data"] })
            let restore = try LiveUpdateScenarioTests.rehearse(ferryd)
            let update = try #require(restore["update"]?.decode(LiveUpdateReport.self), "\(restore)")
            #expect(update.barrier?.map(\.outcome) == ["prepared"])
            #expect(update.preserved.map(\.name) == ["data"])
            // Asked once, never told to resume (the update went on); the new process got its fd.
            #expect(Self.lines(log).first == "prepare")
            #expect(!Self.lines(log).contains("resume"))
            #expect(ferryd.waitUntil { Report.read(after)?.fds.contains { $0.name == "data" && $0.data == "precious" } == true })
        }
    }

    /// contrib/examples: what docs/prepare-barrier.md shows a C or Python service doing.
    static let examples: String = {
        var path = #filePath
        while !path.hasSuffix("/Tests/") { path.removeLast() }
        return String(path.dropLast("Tests/".count)) + "contrib/examples"
    }()

    static func exampleUnit(_ command: String, extra: String = "") -> String {
        """
        [Service]
        Type=notify
        ExecStart=\(command)
        X-FerryPrepare=yes
        TimeoutStopSec=5
        \(extra)
        """
    }

    /// The C example, built with cc, refuses: the update is abandoned and the example resumes.
    @Test(.enabled(if: access("/usr/bin/cc", X_OK) == 0, "needs cc")) func theCExampleRefusesAndResumes() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let binary = "\(ferryd.directory.path)/prepare-barrier"
            let cc = try Child.spawn(["/usr/bin/cc", "-Wall", "-Werror", "-O2", "-o", binary, "\(Self.examples)/prepare-barrier.c"])
            try #require(cc.wait() == 0, "cc failed: \(cc.output)")
            ferryd.writeUnit("c.service", Self.exampleUnit("\(binary) 'guest 3 is migrating'"))
            _ = try ferryd.start("c.service")
            #expect(try ferryd.state("c.service") == "active (running)")
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            #expect(reply.parameters["report"]?["failure"]?.string == "unit c.service refused to prepare for the live update: guest 3 is migrating")
            #expect(ferryd.waitUntil { try ferryd.unit("c.service")["status"]?.string == "resumed after an abandoned live update" })
            #expect(try ferryd.state("c.service") == "active (running)")
        }
    }

    /// The Python example (standard library only) prepares, and a ServiceKit service refuses.
    @Test func thePythonExamplePreparesAndAServiceKitServiceRefuses() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("py.service", Self.exampleUnit("\(systemPython) \(Self.examples)/prepare-barrier.py"))
            ferryd.writeUnit("swift.service", Self.exampleUnit("\(ferryctlPath) test-service prepare refuse:swift-says-no",
                                                             extra: "FileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes"))
            _ = try ferryd.start("py.service")
            _ = try ferryd.start("swift.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("swift.service") == ["state"] })
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            let report = try #require(reply.parameters["report"]?.decode(LiveUpdateReport.self), "\(reply)")
            #expect(report.failure == "unit swift.service refused to prepare for the live update: swift-says-no")
            #expect(report.barrier?.first { $0.unit == "swift.service" }?.outcome == "refused")
            #expect(ferryd.waitUntil { try ferryd.unit("py.service")["status"]?.string == "resumed after an abandoned live update" })
            #expect(ferryd.waitUntil { try ferryd.unit("swift.service")["status"]?.string == "resumed" })
            #expect(try ferryd.storeNames("swift.service") == ["state"])
            // Without the refusing unit, the Python example prepares and the update goes on.
            ferryd.writeUnit("swift.service", Self.exampleUnit("\(ferryctlPath) test-service prepare ok",
                                                             extra: "FileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes"))
            _ = try ferryd.call("Reload")
            _ = try ferryd.call("RestartUnit", ["name": .string("swift.service")])
            #expect(ferryd.waitUntil { try ferryd.state("swift.service") == "active (running)" })
            let restore = try LiveUpdateScenarioTests.rehearse(ferryd)
            let update = try #require(restore["update"]?.decode(LiveUpdateReport.self), "\(restore)")
            #expect(update.barrier?.map { "\($0.unit) \($0.outcome)" }.sorted() == ["py.service prepared", "swift.service prepared"])
        }
    }
}
