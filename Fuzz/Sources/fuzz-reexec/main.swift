// ReexecState.decode: the JSON a re-executing ferryd leaves in the memfd named by FERRYD_STATE_FD.
import FuzzSupport
import Orchestrator

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let state = ReexecState.decode(input) else { return 0 }
    require(state.version == 1, "version \(state.version) accepted")
    // What a re-exec would write from it reads back.
    guard let written = state.encoded() else { return 0 }
    let again = ReexecState.decode(written)
    require(again != nil, "a written state cannot be read")
    require(again?.units == state.units, "units differ after a round trip")
    return 0
}

runFuzzer(testOneInput)
