// FerryJSON: JSONValue.parse, alone and recording key order, and the encoder on what it returns.
import FerryJSON
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    let plain = JSONValue.parse(input)
    let ordered = JSONValue.parse(input, keyOrderOf: "units")
    require((plain == nil) == (ordered == nil), "the two parses disagree on validity")
    guard let value = plain, let ordered else { return 0 }
    require(ordered.value == value, "the ordered parse reads a different value")
    if case .object(let members) = value {
        require(ordered.rootKeys.map { Set($0) } == Set(members.keys), "root key order misses keys")
        if case .object(let units)? = members["units"] {
            require(ordered.memberKeys.map { Set($0) } == Set(units.keys), "member key order misses keys")
        }
    } else {
        require(ordered.rootKeys == nil, "key order for a root that is not an object")
    }
    // Whatever parses, written out, parses back to the same value (numbers JSON can write).
    if isFinite(value) {
        let text = value.encodedString()
        require(JSONValue.parse(Array(text.utf8)) == value, "round trip differs: \(text.prefix(200))")
    }
    return 0
}

func isFinite(_ value: JSONValue) -> Bool {
    switch value {
    case .number(let number): number.isFinite
    case .array(let items): items.allSatisfy(isFinite)
    case .object(let members): members.values.allSatisfy(isFinite)
    default: true
    }
}

runFuzzer(testOneInput)
