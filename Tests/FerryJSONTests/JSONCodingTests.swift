import FerryJSON
import Testing

/// Codable to and from `JSONValue` without Foundation: the shapes Ferry's reports, history and
/// re-exec state use, and the errors a bad document gives.
@Suite struct JSONCodingTests {
    enum Kind: String, Codable, Equatable { case fd, session = "luo_session" }

    enum Outcome: Codable, Equatable {
        case done(count: Int)
        case failed(String)
        case none
    }

    struct Inner: Codable, Equatable {
        var name: String
        var token: UInt64?
    }

    struct Sample: Codable, Equatable {
        var id: String
        var count: Int
        var micros: UInt64
        var ratio: Double
        var flag: Bool
        var kind: Kind
        var note: String?
        var items: [Inner]
        var byUnit: [String: [Int]]
        var nested: [[Inner?]]
        var outcome: Outcome
        var extra: JSONValue
    }

    static let sample = Sample(
        id: "a/b", count: -3, micros: 9_007_199_254_740_000, ratio: 0.25, flag: true, kind: .session, note: nil,
        items: [.init(name: "x", token: 7), .init(name: "y", token: nil)],
        byUnit: ["a.service": [1, 2], "b.service": []], nested: [[nil, .init(name: "z", token: 0)]],
        outcome: .done(count: 2), extra: .object(["k": .array([.null, .bool(false), .number(1.5)])]))

    @Test func aValueComesBackAsItWent() throws {
        let value = try JSONValue.encoding(Self.sample)
        #expect(try value.decoding(Sample.self) == Self.sample)
        // Through bytes too, as a report or the history travels.
        let parsed = try #require(JSONValue.parse(value.compactBytes()))
        #expect(try parsed.decoding(Sample.self) == Self.sample)
    }

    @Test func itIsWrittenAsFoundationWroteIt() throws {
        let value = try JSONValue.encoding(Self.sample)
        #expect(value["note"] == nil, "a nil optional is left out")
        #expect(value["kind"] == .string("luo_session"))
        #expect(value["micros"] == .number(9_007_199_254_740_000))
        #expect(value["items"]?.array?[1] == .object(["name": .string("y")]))
        #expect(value["outcome"] == .object(["done": .object(["count": .number(2)])]))
        #expect(value["nested"] == .array([.array([.null, .object(["name": .string("z"), "token": .number(0)])])]))
        #expect(String(decoding: JSONValue.object(["p": .string("/run/x")]).compactBytes(), as: UTF8.self) == #"{"p":"/run/x"}"#)
    }

    @Test func missingOptionalsAndNullsAreNil() throws {
        let value = JSONValue.object(["name": .string("n"), "token": .null])
        #expect(try value.decoding(Inner.self) == Inner(name: "n", token: nil))
        #expect(try JSONValue.object(["name": .string("n")]).decoding(Inner.self) == Inner(name: "n", token: nil))
    }

    @Test func badDocumentsAreErrorsNotCrashes() {
        #expect(throws: DecodingError.self) { try JSONValue.object([:]).decoding(Inner.self) }
        #expect(throws: DecodingError.self) { try JSONValue.object(["name": .number(1)]).decoding(Inner.self) }
        #expect(throws: DecodingError.self) { try JSONValue.object(["name": .string("n"), "token": .number(-1)]).decoding(Inner.self) }
        #expect(throws: DecodingError.self) { try JSONValue.object(["name": .string("n"), "token": .number(1.5)]).decoding(Inner.self) }
        #expect(throws: DecodingError.self) { try JSONValue.array([]).decoding(Inner.self) }
        #expect(throws: DecodingError.self) { try JSONValue.string("other").decoding(Kind.self) }
        #expect(JSONValue.number(3).decode([Int].self) == nil)
    }

    @Test func nonFiniteNumbersAreRefused() {
        #expect(throws: EncodingError.self) { try JSONValue.encoding(["x": Double.nan]) }
        #expect(JSONValue.from(["x": Double.infinity]) == .null)
    }
}
