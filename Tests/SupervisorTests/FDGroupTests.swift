import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import FoundationEssentials
import LiveUpdate
import LiveUpdateEmulator
import LiveUpdateReports
import Testing

/// X-FerryFDGroup=: members preserved in declared order, all-or-nothing, retrieved in reverse,
/// as the emulator's call log shows; the dry run predicts each member as the rehearsal carries it.
@Suite struct FDGroupTests {
    static func calls(_ emulator: EmulatorHost) throws -> [EmulatorCall] {
        let text = try EmulatorControl.status(socketPath: emulator.socketPath)
        return try JSONDecoder().decode(EmulatorStatus.self, from: Data(text.utf8)).calls ?? []
    }

    @Test(.needs(.pythonSystemd)) func aGroupIsPreservedInDeclaredOrderAndRetrievedInReverse() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let after = "\(ferryd.directory.path)/after.json"
            // Stored out of order; each memfd's size tells it apart in the call log (mem-1 is 1 byte, …).
            ferryd.writeUnit("vm.service", toolUnit("report \(after) store vfio dddd store mem-1 a store other zzzzz store iommufd ccc store mem-0 bb barrier ready sleep",
                                                    extra: "X-FerryFDGroup=vm0 mem-* iommufd vfio"))
            _ = try ferryd.start("vm.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("vm.service").count == 5 })

            let dry = try #require(try ferryd.call("Preflight", ["rehearse": .bool(true)]).parameters["preflight"]?.decode(PreflightReport.self))
            #expect(dry.verdict == "go")
            #expect(dry.entries.compactMap { $0.group.map { "\($0)" } } == ["vm0 #1", "vm0 #2", "vm0 #3", "vm0 #4"])
            #expect(dry.entries.filter { $0.group != nil }.map(\.name) == ["mem-1", "mem-0", "iommufd", "vfio"])

            let restore = try LiveUpdateScenarioTests.rehearse(ferryd)
            let update = try #require(restore["update"]?.decode(LiveUpdateReport.self), "\(restore)")
            let grouped = update.preserved.filter { $0.group == "vm0" }
            #expect(grouped.map(\.name) == ["mem-1", "mem-0", "iommufd", "vfio"])
            #expect(grouped.map(\.token) == [1, 2, 3, 4])
            let session = try #require(grouped.first?.sessionName)
            #expect(Set(grouped.map(\.sessionName)) == [session])
            #expect(update.preserved.first { $0.name == "other" }?.sessionName == nil)

            let log = try Self.calls(emulator)
            let kexec = try #require(log.firstIndex { $0.op == "KEXEC" })
            let before = log[..<kexec].filter { $0.session == session }
            #expect(before.filter { $0.op == "PRESERVE_FD" }.map(\.size) == [1, 2, 3, 4])
            #expect(before.filter { $0.op == "PRESERVE_FD" }.map(\.token) == [1, 2, 3, 4])
            let afterward = log[kexec...].filter { $0.session == session }
            #expect(afterward.map(\.op) == ["RETRIEVE_SESSION", "RETRIEVE_FD", "RETRIEVE_FD", "RETRIEVE_FD", "RETRIEVE_FD", "FINISH", "CLOSE"],
                    "\(afterward)")
            #expect(afterward.filter { $0.op == "RETRIEVE_FD" }.map(\.token) == [4, 3, 2, 1])
            #expect(afterward.filter { $0.op == "RETRIEVE_FD" }.map(\.size) == [4, 3, 2, 1])
            // The unit gets the group back in the declared order, ahead of its ungrouped fd.
            #expect(ferryd.waitUntil { Report.read(after)?.fds.map { $0.name ?? "" } == ["mem-1", "mem-0", "iommufd", "vfio", "other"] })
            #expect(Report.read(after)?.fds.map(\.data) == ["a", "bb", "ccc", "dddd", "zzzzz"])
        }
    }

    @Test(.needs(.pythonSystemd)) func aGroupWithAMemberThatCannotRideLosesEveryMemberAsTheDryRunSaid() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let after = "\(ferryd.directory.path)/after.json"
            ferryd.writeUnit("vm.service", toolUnit("report \(after) store ram bytes storepipe0 console store spare kept barrier ready sleep",
                                                    extra: "X-FerryFDGroup=vm1 ram console"))
            ferryd.writeUnit("db.service", toolUnit("store wal log storesocket peer barrier ready sleep",
                                                    extra: "X-FerryFDGroup=db wal"))
            _ = try ferryd.start("vm.service")
            _ = try ferryd.start("db.service")
            #expect(ferryd.waitUntil { try ferryd.storeNames("vm.service").count == 3 && ferryd.storeNames("db.service").count == 2 })

            let dry = try #require(try ferryd.call("Preflight", ["rehearse": .bool(true)]).parameters["preflight"]?.decode(PreflightReport.self))
            let incomplete = "group vm1 incomplete: fd 'console' cannot be preserved (LUO cannot carry pipes"
            #expect(dry.entries.filter { $0.unit == "vm.service" && !$0.survives }.map(\.name).sorted() == ["console", "ram"])
            #expect(dry.entries.first { $0.name == "ram" }?.reason?.hasPrefix(incomplete) == true, "\(dry.entries)")
            #expect(dry.entries.first { $0.name == "wal" }?.survives == true)

            let restore = try LiveUpdateScenarioTests.rehearse(ferryd)
            let update = try #require(restore["update"]?.decode(LiveUpdateReport.self), "\(restore)")
            // Entry by entry, the rehearsal lost what the dry run said, for the reason it said.
            let predicted = dry.entries.filter { !$0.survives }.map { "\($0.unit)/\($0.name): \($0.reason ?? "")" }.sorted()
            #expect(update.lost.map { "\($0.unit)/\($0.name): \($0.reason)" }.sorted() == predicted)
            let carried = dry.entries.filter(\.survives).map { "\($0.unit)/\($0.name)" }.sorted()
            #expect(update.preserved.map { "\($0.unit)/\($0.name)" }.sorted() == carried)
            #expect(update.losses?.filter { $0.reason == .groupIncomplete }.count == 2)

            // The group's session was closed before the kexec: ram was preserved, then taken back.
            let log = try Self.calls(emulator)
            let kexec = try #require(log.firstIndex { $0.op == "KEXEC" })
            // Ferry's shards are ferry.N (the dry run's scratch sessions are named otherwise).
            let failed = try #require(log[..<kexec].first { $0.op == "PRESERVE_FD" && $0.result == "ENOENT" && $0.session?.hasPrefix("ferry.") == true }?.session)
            #expect(log[..<kexec].filter { $0.session == failed }.map(\.op) == ["CREATE_SESSION", "PRESERVE_FD", "PRESERVE_FD", "CLOSE"])
            #expect(!log[kexec...].contains { $0.session == failed && $0.op == "RETRIEVE_SESSION" && $0.result == nil })
            // Nothing of the group came back; the ungrouped memfd did.
            #expect(ferryd.waitUntil { Report.read(after)?.fds.map { $0.name ?? "" } == ["spare"] })
        }
    }
}
