@testable import FDStore
import FerryJSON
import Testing

/// The mapping's quick reader must read exactly what the tolerant one reads, or step aside.
@Suite struct MappingQuickReadTests {
    static func valid(_ name: String) -> Bool { name.hasSuffix(".service") && !name.contains(" ") }

    static let sample: LiveUpdateMapping = {
        var mapping = LiveUpdateMapping(units: [
            ("a.service", [.fd(name: "state", token: 1), .fd(name: "state", token: 2), .session(name: "vm0", sessionName: "a-vm0")]),
            ("b.service", [.fd(name: "ünïcode", token: 3, shard: "ferry.1"), .fd(name: "x", token: 3)]),
            ("c.service", []),
        ], state: ["ferry": .object(["shards": .array([.string("ferry.1")]), "report": .object(["id": .string("1/2")])])])
        mapping.kexecsCount = 4
        return mapping
    }()

    @Test func unknownKeysAreSkippedAsTheTolerantReaderSkipsThem() throws {
        let bytes = Array(#"{"version":1,"extra":{"a":[1,{"b":null}]},"units":{"a.service":{"more":true,"fdstore":[{"type":"fd","name":"x","token":1,"future":{"k":"v"}}]}}}"#.utf8)
        let quick = try #require(LiveUpdateMapping.quickRead(bytes, isValidUnit: Self.valid))
        #expect(quick.units.first?.entries == [.fd(name: "x", token: 1)])
        guard case .success(let tolerant) = LiveUpdateMapping.tolerantDecode(bytes, isValidUnit: Self.valid) else {
            Issue.record("the tolerant reader refused it")
            return
        }
        #expect(quick == tolerant.mapping && tolerant.problems.isEmpty)
    }

    @Test func readsWhatFerryWritesAsTheTolerantReaderDoes() throws {
        let bytes = Self.sample.encoded()
        let quick = try #require(LiveUpdateMapping.quickRead(bytes, isValidUnit: Self.valid))
        guard case .success(let tolerant) = LiveUpdateMapping.tolerantDecode(bytes, isValidUnit: Self.valid) else {
            Issue.record("the tolerant reader refused it")
            return
        }
        #expect(tolerant.problems.isEmpty)
        // (c.service, with no entries, is not written at all.)
        #expect(quick == tolerant.mapping)
        #expect(quick.units.map(\.unit) == ["a.service", "b.service"])
        #expect(quick.kexecsCount == 4)
    }

    @Test(arguments: [
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":1},{"type":"fd","name":"y","token":1}]}}}"#,
        #"{"version":1,"units":{"bad name":{"fdstore":[{"type":"fd","name":"x","token":1}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x\u0041","token":1}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":"7"}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"pipe","name":"x","token":1}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":0}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","name":"y","token":1}]}}}"#,
        #"{"version":1,"units":{"a.service":{}}}"#,
        #"{"version":1,"state":null,"units":{}}"#,
        #"{"a.service":[{"type":"fd","name":"x","token":1}]}"#,
        #"{"version":2,"units":{}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":1.5}]}}}"#,
        #"{"version":1,"units":{"a.service":{"fdstore":[{"type":"fd","name":"x","token":1,"other":[1],"other":2}]}}}"#,
    ])
    func stepsAsideWhereTheTolerantReaderHasSomethingToSay(document: String) {
        let bytes = Array(document.utf8)
        #expect(LiveUpdateMapping.quickRead(bytes, isValidUnit: Self.valid) == nil)
        // decode still answers, through the tolerant reader.
        let decoded = LiveUpdateMapping.decode(bytes, isValidUnit: Self.valid)
        let tolerant = LiveUpdateMapping.tolerantDecode(bytes, isValidUnit: Self.valid)
        switch (decoded, tolerant) {
        case (.success(let a), .success(let b)): #expect(a.mapping == b.mapping && a.problems == b.problems)
        case (.failure, .failure): break
        default: Issue.record("decode and the tolerant reader disagree on \(document)")
        }
    }

    /// Every mutation of a valid mapping (a byte changed, removed or repeated) that the quick
    /// reader accepts reads as the tolerant reader reads it, without a problem.
    @Test func agreesOnMutatedDocuments() {
        let original = Self.sample.encoded()
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        let alphabet = Array(#"{}[]:,"\ 0123456789.eE+-abcdefnrstuly"#.utf8) + [0xC3, 0xFF, 0x00, 0x1F]
        for _ in 0..<3000 {
            var bytes = original
            let at = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: bytes[at] = alphabet.randomElement(using: &generator)!
            case 1: bytes.remove(at: at)
            default: bytes.insert(bytes[at], at: at)
            }
            guard let quick = LiveUpdateMapping.quickRead(bytes, isValidUnit: Self.valid) else { continue }
            accepted += 1
            guard case .success(let tolerant) = LiveUpdateMapping.tolerantDecode(bytes, isValidUnit: Self.valid) else {
                Issue.record("quick read a document the tolerant reader refuses: \(String(decoding: bytes, as: UTF8.self))")
                continue
            }
            #expect(tolerant.problems.isEmpty, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(quick == tolerant.mapping, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 0)
    }
}
