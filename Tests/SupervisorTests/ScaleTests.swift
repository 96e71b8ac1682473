import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// 10,000 stored fds across 1,000 units ride a rehearsed live update with nothing lost, on every
/// behaviour level (6.19 and 7.1 take 128 files per session: shards carry the rest).
@Suite(.serialized) struct ScaleTests {
    @Test(arguments: [BehaviourLevel.v6_19, .v7_1, .v7_2, .v7_3])
    func tenThousandFdsAcrossAThousandUnits(_ level: BehaviourLevel) throws {
        try withEmulator(level) { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            // One template, a thousand instances: each stores ten memfds and exits.
            ferryd.writeUnit("bulk@.service", LiveUpdateScenarioTests.testUnit("store-many", prefix: "10", max: 10))
            let names = (0..<1000).map { "bulk@\($0).service" }
            for name in names {
                do {
                    #expect(try ferryd.call("StartUnit", ["name": .string(name), "noBlock": .bool(true)]).error == nil)
                } catch {
                    Issue.record("\(name): \(error); ferryd: \(ferryd.log.suffix(3000))")
                    return
                }
            }
            #expect(ferryd.waitUntil(seconds: 300) {
                try ferryd.call("GetManager").parameters["storedFDs"]?.number == 10_000
            }, "\((try? ferryd.call("GetManager").parameters) ?? [:])")
            let reply = try ferryd.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == nil)
            #expect(reply.parameters["report"]?["lost"]?.array?.isEmpty == true)
            #expect(reply.parameters["report"]?["preserved"]?.array?.count == 10_000)
            #expect(ferryd.waitUntil(seconds: 120) {
                try ferryd.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true
            })
            let restore = try ferryd.call("GetLiveUpdate").parameters["restore"]
            #expect(restore?["restored"]?.array?.count == 10_000, "\(restore?["problems"] ?? .null)")
            #expect(try ferryd.call("GetManager").parameters["storedFDs"]?.number == 10_000)
        }
    }
}
