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

/// Know before the kexec: the dry run's answer, entry by entry, is what a rehearsal then carries.
@Suite struct PreflightTests {
    /// unit/name of each entry, sorted (names repeat: many.service stores every fd as "bulk").
    static func lostSet(_ entries: [(String, String)]) -> [String] { entries.map { "\($0.0)/\($0.1)" }.sorted() }

    @Test(.needs(.pythonSystemd)) func theDryRunAgreesWithTheRehearsalEntryByEntry() throws {
        // 6.19: 128 files per session, so 130 memfds (with the mapping) need two sessions.
        try withEmulator(.v6_19) { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("mix.service", toolUnit("store m memory storepipe0 p storesocket s barrier ready sleep"))
            ferryd.writeUnit("restart.service", toolUnit("store r kept barrier ready sleep", extra: "FileDescriptorStorePreserve=restart"))
            ferryd.writeUnit("zmany.service", LiveUpdateScenarioTests.testUnit("store-many", prefix: "130", max: 200))
            // Groups are part of the prediction: one that rides whole, one that a pipe breaks.
            ferryd.writeUnit("vm.service", toolUnit("store mem guest store dev vfio store ram bytes storepipe0 console barrier ready sleep",
                                                    extra: "X-FerryFDGroup=whole mem dev\nX-FerryFDGroup=broken ram console"))
            _ = try ferryd.start("mix.service")
            _ = try ferryd.start("restart.service")
            _ = try ferryd.start("zmany.service")
            _ = try ferryd.start("vm.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("mix.service").count == 3 && ferryd.storeNames("zmany.service").count == 130 && ferryd.storeNames("vm.service").count == 4 })
            let reply = try ferryd.call("Preflight", ["rehearse": .bool(true)])
            let preflight = try #require(reply.parameters["preflight"]?.decode(PreflightReport.self), "\(reply)")
            #expect(preflight.method.hasPrefix("backend"))
            #expect(preflight.verdict == "go-with-losses", "\(preflight.problems)")
            let predicted = Self.lostSet(preflight.entries.filter { !$0.survives }.map { ($0.unit, $0.name) })
            #expect(preflight.entries.first { $0.name == "s" }?.reason?.contains("LUO cannot carry unix sockets") == true, "\(preflight.entries.filter { !$0.survives && $0.unit == "mix.service" })")
            #expect(preflight.entries.first { $0.name == "p" }?.reason?.contains("LUO cannot carry pipes") == true)
            #expect(preflight.entries.first { $0.name == "r" }?.reason?.contains("FileDescriptorStorePreserve=restart") == true)
            // 128 files per session: the mapping, mix.service's memfd and 126 of zmany.service's
            // fill Ferry's session, and a second one (a shard) takes the rest. Nothing is lost.
            #expect(preflight.entries.filter { $0.unit == "zmany.service" && !$0.survives }.isEmpty)
            #expect(preflight.entries.filter { $0.unit == "vm.service" }.map { "\($0.name) \($0.group ?? "") \($0.survives)" }
                    == ["mem whole #1 true", "dev whole #2 true", "ram broken #1 false", "console broken #2 false"])
            #expect(preflight.pinnedBytes > 0)
            // The dry run changed nothing: every store is whole, every unit still where it was.
            #expect(try ferryd.storeNames("mix.service").count == 3)
            #expect(try ferryd.state("mix.service") == "active (running)")

            let update = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            let report = try #require(update.parameters["report"]?.decode(LiveUpdateReport.self), "\(update)")
            #expect(report.verdict == "degraded")
            #expect(Self.lostSet(report.lost.map { ($0.unit, $0.name) }) == predicted)
            // Entry by entry, with the same words, groups included.
            for lost in report.lost {
                #expect(preflight.entries.first { $0.unit == lost.unit && $0.name == lost.name }?.reason == lost.reason, "\(lost)")
            }
            #expect(report.preserved.filter { $0.group == "whole" }.map(\.name) == ["mem", "dev"])
            #expect(report.lost.first { $0.name == "s" }?.reason == preflight.entries.first { $0.name == "s" }?.reason)
            #expect(report.preserved.contains { $0.sessionName == "ferry.1" })
            // After the rehearsal every one of zmany.service's 130 fds is back.
            #expect(ferryd.waitUntil(seconds: 30) { try ferryd.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true })
            #expect(try ferryd.storeNames("zmany.service").count == 130)
        }
    }

    @Test(.needs(.pythonSystemd)) func aRequiredUnitOrRequireAllMakesALossAbortTheUpdate() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("vm.service", toolUnit("store ram bytes storepipe0 console barrier ready sleep", extra: "X-FerryRequired=yes"))
            ferryd.writeUnit("cache.service", toolUnit("store c data storesocket peer barrier ready sleep"))
            _ = try ferryd.start("vm.service")
            _ = try ferryd.start("cache.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("vm.service").count == 2 && ferryd.storeNames("cache.service").count == 2 })
            let dry = try #require(try ferryd.call("Preflight", ["rehearse": .bool(true)]).parameters["preflight"]?.decode(PreflightReport.self))
            #expect(dry.verdict == "no-go")
            #expect(dry.problems.contains { $0.contains("vm.service has X-FerryRequired=yes") })
            let update = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(update.error == "io.ferry.Manager.LiveUpdateFailed")
            #expect(update.parameters["report"]?["failure"]?.string?.contains("vm.service has X-FerryRequired=yes") == true)
            #expect(update.parameters["report"]?["verdict"]?.string == "failed")
            // Rolled back: both units run again with every fd.
            #expect(ferryd.waitUntil { try ferryd.state("vm.service") == "active (running)" && ferryd.state("cache.service") == "active (running)" })
            // (They store again as they start: the originals are there, and the new ones too.)
            #expect(Set(try ferryd.storeNames("vm.service")) == ["ram", "console"])
            #expect(Set(try ferryd.storeNames("cache.service")) == ["c", "peer"])
            // Without the required unit, --require-all still refuses cache.service's socket.
            ferryd.writeUnit("vm.service", toolUnit("store ram bytes barrier ready sleep", extra: "X-FerryRequired=yes"))
            _ = try ferryd.call("Reload")
            let strict = try #require(try ferryd.call("Preflight", ["rehearse": .bool(true), "requireAll": .bool(true)]).parameters["preflight"]?.decode(PreflightReport.self))
            #expect(strict.problems.contains { $0.contains("--require-all: cache.service fd 'peer'") })
        }
    }

    /// A shard that cannot be retrieved after the kexec loses only its own entries, each named.
    @Test func aLostShardLosesOnlyItsOwnEntries() throws {
        try withEmulator(.v6_19) { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath],
                                            environment: ["FERRYD_TEST_EMULATOR_KEXEC=lose=ferry.1"])
            ferryd.writeUnit("many.service", LiveUpdateScenarioTests.testUnit("store-many", prefix: "130", max: 200))
            _ = try ferryd.start("many.service")
            #expect(try ferryd.storeNames("many.service").count == 130)
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            // The mapping and 127 fds fill the first session; the 3 in ferry.1 are gone, and said so.
            #expect(try ferryd.storeNames("many.service").count == 127)
            let problems = try ferryd.call("GetLiveUpdate").parameters["restore"]?["problems"]?.array?.compactMap(\.string) ?? []
            #expect(problems.filter { $0.contains("unit many.service fd 'bulk'") && $0.contains("LUO session 'ferry.1' cannot be retrieved") }.count == 3,
                    "\(problems)")
        }
    }
}
