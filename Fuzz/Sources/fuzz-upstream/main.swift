// UpstreamMapping.decode: systemd-fdstore-mapping, which a nested ferryd gets back from the manager
// above (LISTEN_FDS) and reads to give each sub-fdstore-N fd to its unit.
import FDStore
import FuzzSupport
import Supervisor

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard case .success(let reading) = UpstreamMapping.decode(input, isValidUnit: { UnitName($0) != nil }) else { return 0 }
    var indices: Set<UInt64> = []
    for (unit, entries) in reading.mapping.units {
        require(UnitName(unit) != nil, "invalid unit '\(unit)' kept")
        for entry in entries {
            require(entry.index >= 1, "index 0 kept")
            require(indices.insert(entry.index).inserted, "index \(entry.index) kept twice")
            require(UpstreamMapping.index(fromName: UpstreamMapping.fdName(index: entry.index)) == entry.index, "fd name round trip")
        }
    }
    var written = reading.mapping
    written.units = written.units.filter { !$0.entries.isEmpty }
    guard case .success(let again) = UpstreamMapping.decode(written.encoded(), isValidUnit: { UnitName($0) != nil }) else {
        require(false, "the written mapping cannot be read")
        return 0
    }
    require(again.mapping == written, "the written mapping reads differently")
    require(again.problems.isEmpty, "the written mapping has problems: \(again.problems)")
    return 0
}

runFuzzer(testOneInput)
