import FerryControl
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import Testing

/// A boot that finds a corrupt or hostile mapping in Ferry's session: ferryd must not crash,
/// must restore what can be restored, and must report the rest by unit and name.
@Suite struct HostileMappingTests {
    /// Plants session `ferry` with memfds at tokens 1 and 2 and `mapping` at token 0, kexecs the emulator.
    static func plant(_ emulator: EmulatorHost, mapping: String) throws {
        let device = try LiveUpdateDevice.open(emulator.backend)
        let session = try device.createSession(named: "ferry")
        _ = consume device
        let one = try Memfd.create(name: "one", contents: Array("first".utf8))
        let two = try Memfd.create(name: "two", contents: Array("second".utf8))
        try session.preserve(one.borrowed, token: 1)
        try session.preserve(two.borrowed, token: 2)
        let document = try Memfd.create(name: "mapping", contents: Array(mapping.utf8))
        try session.preserve(document.borrowed, token: 0)
        _ = try EmulatorControl.simulateKexec(socketPath: emulator.socketPath)
    }

    @Test func hostileEntriesAreReportedTheRestRestored() throws {
        try withEmulator { emulator in
            try Self.plant(emulator, mapping: #"""
                {"version":1,"state":{"kexecsCount":"x"},"units":{
                  "good.service":{"fdstore":[{"type":"fd","name":"a","token":1},{"type":"fd","name":"gone","token":77},
                     {"type":"fd","name":"zero","token":0},{"type":"luo_session","name":"vm","sessionName":"no-such-session"}]},
                  "bad/name.service":{"fdstore":[{"type":"fd","name":"b","token":2}]},
                  "other.service":{"fdstore":[{"type":"fd","name":"b","token":2},{"type":"fd","name":"again","token":2}]}}}
                """#)
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            #expect(ferryd.isAlive)
            let restore = try #require(try ferryd.call("GetLiveUpdate").parameters["restore"]?.object)
            let problems = (restore["problems"]?.array ?? []).compactMap(\.string).joined(separator: "\n")
            #expect(try ferryd.storeNames("good.service") == ["a"])
            #expect(try ferryd.storeNames("other.service") == ["b"])
            for expected in ["unit good.service fd 'gone' token 77: LIVEUPDATE_SESSION_RETRIEVE_FD failed: ENOENT",
                             "token 0, which is reserved", "session 'no-such-session'", "invalid unit name",
                             "token 2 used twice"] {
                #expect(problems.contains(expected), "missing: \(expected) in \(problems)")
            }
            #expect(restore["kexecCount"]?.number == 1)
        }
    }

    @Test(arguments: [
        ("{\"version\":2,\"units\":{\"a.service\":{\"fdstore\":[{\"type\":\"fd\",\"name\":\"a\",\"token\":1}]}}}", "unsupported version 2"),
        ("{\"version\":1,\"units\":{\"a.service\"", "not valid JSON"),
        ("\u{0}\u{1}binary", "not valid JSON"),
        ("", "not valid JSON"),
    ])
    func unusableMappingsRestoreNothingAndSayWhy(mapping: String, reason: String) throws {
        try withEmulator { emulator in
            try Self.plant(emulator, mapping: mapping)
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            #expect(ferryd.isAlive)
            let restore = try #require(try ferryd.call("GetLiveUpdate").parameters["restore"]?.object)
            let problems = (restore["problems"]?.array ?? []).compactMap(\.string).joined(separator: "\n")
            #expect(problems.contains(reason), "\(problems)")
            #expect(try ferryd.call("ListUnits").parameters["units"]?.array?.isEmpty == true)
            // Ferry's session was finished: nothing is left behind in the (emulated) kernel.
            let status = try EmulatorControl.status(socketPath: emulator.socketPath)
            #expect(!status.contains("\"retrieved\":false"), "\(status)")
        }
    }

    /// Group records that disagree with the mapping are not trusted: their fds restore in mapping
    /// order, and each record is reported.
    @Test func groupRecordsThatDisagreeWithTheMappingAreIgnored() throws {
        try withEmulator { emulator in
            let device = try LiveUpdateDevice.open(emulator.backend)
            let session = try device.createSession(named: "ferry")
            let shard = try device.createSession(named: "ferry.1")
            _ = consume device
            let one = try Memfd.create(name: "one", contents: Array("first".utf8))
            let two = try Memfd.create(name: "two", contents: Array("second".utf8))
            try shard.preserve(one.borrowed, token: 1)
            try shard.preserve(two.borrowed, token: 2)
            let mapping = #"""
                {"version":1,"state":{"ferry":{"shards":["ferry.1"],"groups":[
                  {"unit":"good.service","group":"g","session":"ferry.1","members":["b"]},
                  {"unit":"good.service","group":"h","session":"elsewhere","members":["a","b"]},
                  {"unit":"good.service","group":"i","session":"ferry.1"}]}},
                 "units":{"good.service":{"fdstore":[{"type":"fd","name":"a","token":1,"session":"ferry.1"},
                                                     {"type":"fd","name":"b","token":2,"session":"ferry.1"}]}}}
                """#
            let document = try Memfd.create(name: "mapping", contents: Array(mapping.utf8))
            try session.preserve(document.borrowed, token: 0)
            _ = try EmulatorControl.simulateKexec(socketPath: emulator.socketPath)
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            #expect(ferryd.isAlive)
            let restore = try #require(try ferryd.call("GetLiveUpdate").parameters["restore"]?.object)
            let problems = (restore["problems"]?.array ?? []).compactMap(\.string)
            #expect(problems.filter { $0.contains("group record in the mapping does not match its entries") }.count == 3, "\(problems)")
            // Restored as ordinary shard entries, in mapping order.
            #expect(Set(try ferryd.storeNames("good.service")) == ["a", "b"])
            let status = try EmulatorControl.status(socketPath: emulator.socketPath)
            #expect(!status.contains("\"retrieved\":false"), "\(status)")
        }
    }
}
