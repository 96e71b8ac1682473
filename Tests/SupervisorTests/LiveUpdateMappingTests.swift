import FDStore
import FerrySystem
import Supervisor
import Testing

@Suite struct LiveUpdateMappingTests {
    static func decode(_ text: String) -> Result<LiveUpdateMapping.Reading, LiveUpdateMapping.Failure> {
        LiveUpdateMapping.decode(Array(text.utf8), isValidUnit: { $0.hasSuffix(".service") && !$0.contains("/") })
    }

    @Test func roundTripKeepsOrderAndState() throws {
        var mapping = LiveUpdateMapping(units: [
            ("b.service", [.fd(name: "state", token: 1), .session(name: "vm0", sessionName: "b-vm0")]),
            ("a.service", [.fd(name: "x:y \"q\"", token: 2)]),
        ])
        mapping.kexecsCount = 3
        mapping.state["ferry"] = .object(["activeUnits": .array([.string("b.service")])])
        let text = String(decoding: mapping.encoded(), as: UTF8.self)
        #expect(text.hasPrefix("{\"version\":1,\"state\":{"))
        let read = try Self.decode(text).get()
        #expect(read.problems == [])
        #expect(read.mapping == mapping)
        #expect(read.mapping.units.map(\.unit) == ["b.service", "a.service"])
        #expect(read.mapping.kexecsCount == 3)
    }

    @Test func systemdDocumentsAreRead() throws {
        let v1 = #"{"version":1,"state":{"kexecsCount":"7"},"units":{"foo.service":{"fdstore":[{"type":"fd","name":"state","token":"1"},{"type":"luo_session","name":"vm0","sessionName":"foo-vm0","extra":true}]}},"future":1}"#
        let read = try Self.decode(v1).get()
        #expect(read.mapping.kexecsCount == 7)
        #expect(read.mapping.units.first?.entries == [.fd(name: "state", token: 1), .session(name: "vm0", sessionName: "foo-vm0")])
        let firstMerged = #"{"foo.service":[{"type":"fd","name":"state","token":1}]}"#
        #expect(try Self.decode(firstMerged).get().mapping.units.first?.entries == [.fd(name: "state", token: 1)])
        // Trailing padding, as Ferry writes it into its fixed-size memfd.
        #expect((try? Self.decode(v1 + String(repeating: " ", count: 500)).get()) != nil)
    }

    @Test func badEntriesAreReportedAndSkipped() throws {
        let hostile = #"""
            {"version":1,"units":{
              "ok.service":{"fdstore":[{"type":"fd","name":"good","token":3},{"type":"fd","name":"zero","token":0},
                {"type":"fd","name":"dup","token":3},{"type":"fd","name":"none"},{"type":"fd","name":"neg","token":-1},
                {"type":"luo_session","name":"s"},{"type":"weird","name":"w"},{"name":"notype"},"text",
                {"type":"fd","name":"null","token":null},{"type":"fd","name":7,"token":9}]},
              "../evil.service":{"fdstore":[{"type":"fd","name":"e","token":4}]},
              "nolist.service":{"fdstore":"nope"},
              "missing.service":{}
            }}
            """#
        let read = try Self.decode(hostile).get()
        #expect(read.mapping.units.map(\.unit) == ["ok.service"])
        #expect(read.mapping.units.first?.entries == [.fd(name: "good", token: 3)])
        let problems = read.problems.joined(separator: "\n")
        for expected in ["token 0, which is reserved", "token 3 used twice", "fd 'none' has no valid token",
                         "session 's' has no 'sessionName'", "unknown type 'weird'", "no 'type'", "not an object",
                         "invalid unit name", "'fdstore' missing or not an array"] {
            #expect(problems.contains(expected), "missing problem: \(expected)")
        }
    }

    @Test func documentsThatCannotBeUsed() {
        #expect(throws: LiveUpdateMapping.Failure.notJSON) { try Self.decode("{\"version\":1,").get() }
        #expect(throws: LiveUpdateMapping.Failure.notAnObject) { try Self.decode("[1,2]").get() }
        #expect(throws: LiveUpdateMapping.Failure.missingVersion) { try Self.decode("{\"version\":\"x\"}").get() }
        #expect(throws: LiveUpdateMapping.Failure.unsupportedVersion(2)) { try Self.decode("{\"version\":2,\"units\":{}}").get() }
        let huge = [UInt8](repeating: 0x20, count: LiveUpdateMapping.maximumSize + 1)
        #expect(throws: LiveUpdateMapping.Failure.tooLarge(huge.count)) {
            try LiveUpdateMapping.decode(huge, isValidUnit: { _ in true }).get()
        }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        // Hostile nesting is refused (bounded depth), not a stack overflow.
        #expect(throws: LiveUpdateMapping.Failure.notJSON) {
            try Self.decode("{\"version\":1,\"units\":{\"a.service\":\(deep)}}").get()
        }
        let reading = try? Self.decode("{\"version\":1,\"units\":5}").get()
        #expect(reading?.problems == ["'units' is not an object, nothing restored"])
    }
}

@Suite struct UpstreamMappingTests {
    @Test func roundTripsInOrder() throws {
        let mapping = UpstreamMapping(units: [
            ("b.service", [.init(name: "state", index: 3), .init(name: "state", index: 1)]),
            ("a.service", [.init(name: "stored", index: 2)]),
        ])
        let reading = try UpstreamMapping.decode(mapping.encoded(), isValidUnit: { UnitName($0) != nil }).get()
        #expect(reading.mapping == mapping)
        #expect(reading.problems.isEmpty)
        #expect(String(decoding: mapping.encoded(), as: UTF8.self) ==
                #"{"b.service":[{"name":"state","index":3},{"name":"state","index":1}],"a.service":[{"name":"stored","index":2}]}"#)
    }

    @Test func namesAndIndices() {
        #expect(UpstreamMapping.index(fromName: "sub-fdstore-12") == 12)
        #expect(UpstreamMapping.index(fromName: "sub-fdstore-0") == nil)
        #expect(UpstreamMapping.index(fromName: "sub-fdstore-") == nil)
        #expect(UpstreamMapping.index(fromName: "stored") == nil)
        #expect(UpstreamMapping.fdName(index: 7) == "sub-fdstore-7")
    }

    @Test func refusesWhatIsNotAnObject() {
        for text in ["", "[1]", "{\"a\":", "null"] {
            guard case .failure = UpstreamMapping.decode(Array(text.utf8), isValidUnit: { _ in true }) else {
                Issue.record("accepted \(text)")
                continue
            }
        }
    }
}
