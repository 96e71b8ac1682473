import FerryJSON
import Testing

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValue() {
        let value = JSONValue.parse(Array(#" {"a":[1,-2.5e1,true,false,null],"s":"q\"\\\/\n\u00e9\ud83d\ude00","o":{}} "#.utf8))
        #expect(value == .object([
            "a": .array([.number(1), .number(-25), .bool(true), .bool(false), .null]),
            "s": .string("q\"\\/\né😀"), "o": .object([:]),
        ]))
    }

    @Test func refusesWhatIsNotExactlyOneValue() {
        for text in ["", "{", "[1,]", "{\"a\":}", "\"open", "tru", "1 2", "{\"a\":1,}", "\"\u{1}\"", "\"\\ud800\"",
                     String(repeating: "[", count: 600) + String(repeating: "]", count: 600)] {
            #expect(JSONValue.parse(Array(text.utf8)) == nil, "accepted \(text.prefix(20))")
        }
        #expect(JSONValue.parse([0xFF, 0xFE]) == nil)
    }

    @Test func roundTripsWithTheEncoder() {
        let value = JSONValue.object(["units": .array([.string("a.service"), .number(3)]), "ok": .bool(true)])
        #expect(JSONValue.parse(Array(value.encodedString().utf8)) == value)
    }

    @Test func recordsTheKeyOrderOfTheRootAndOfOneMember() throws {
        let text = #"{"version":1,"state":{"z":1,"a":2},"units":{"b.service":{},"a.service":{"x":{"q":1}},"c.service":[]}}"#
        let parsed = try #require(JSONValue.parse(Array(text.utf8), keyOrderOf: "units"))
        #expect(parsed.rootKeys == ["version", "state", "units"])
        #expect(parsed.memberKeys == ["b.service", "a.service", "c.service"])
        #expect(parsed.value == JSONValue.parse(Array(text.utf8)))
        let noMember = try #require(JSONValue.parse(Array(#"{"units":[1]}"#.utf8), keyOrderOf: "units"))
        #expect(noMember.memberKeys == nil)
    }
}
