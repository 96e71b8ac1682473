// LiveUpdateMapping.decode: the document at token 0 of the LUO session after a kexec (systemd's v1
// format, or its first merged format), as ferryd's restore reads it.
import FDStore
import FerryJSON
import FuzzSupport
import Supervisor

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard case .success(let reading) = LiveUpdateMapping.decode(input, isValidUnit: { UnitName($0) != nil }) else { return 0 }
    let mapping = reading.mapping
    var tokens: Set<UInt64> = []
    for (unit, entries) in mapping.units {
        require(UnitName(unit) != nil, "invalid unit '\(unit)' kept")
        for entry in entries {
            if case .fd(_, let token, _) = entry {
                require(token != LiveUpdateMapping.mappingToken, "token 0 kept")
                require(tokens.insert(token).inserted, "token \(token) kept twice")
            }
            if case .session(_, let sessionName) = entry { require(!sessionName.isEmpty, "empty session name kept") }
        }
    }
    _ = mapping.kexecsCount
    // What ferryd would write back reads as the same mapping (units without entries are not written).
    var written = mapping
    written.units = written.units.filter { !$0.entries.isEmpty }
    if JSONStateIsFinite(mapping) {
        guard case .success(let again) = LiveUpdateMapping.decode(written.encoded(), isValidUnit: { UnitName($0) != nil }) else {
            require(false, "the written mapping cannot be read")
            return 0
        }
        require(again.mapping == written, "the written mapping reads differently")
        require(again.problems.isEmpty, "the written mapping has problems: \(again.problems)")
    }
    return 0
}

/// Numbers JSON cannot write (1e999 reads as infinity) make the writer fall back to `null`.
func JSONStateIsFinite(_ mapping: LiveUpdateMapping) -> Bool {
    mapping.state.values.allSatisfy(isFinite)
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
