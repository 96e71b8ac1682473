// The emulator's wire format: a packet decoded as a request (what the emulator receives), as a
// reply (what a client receives), and as an emulator socket address (session detection).
import FuzzSupport
import LiveUpdate

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    if let request = EmulatorWire.Request.decode(input) {
        let encoded = request.encoded()
        require(EmulatorWire.Request.decode(encoded) == request, "a request re-encodes differently")
        if String(validating: input.suffix(request.text.utf8.count), as: UTF8.self) == request.text {
            require(encoded == input, "a request with UTF-8 text does not re-encode to its bytes")
        }
    }
    if let reply = EmulatorWire.Reply.decode(input) {
        require(EmulatorWire.Reply.decode(reply.encoded()) == reply, "a reply re-encodes differently")
    }
    // Session detection parses the abstract address of any unix socket's peer.
    let address = EmulatorWire.addressPrefix + input
    for candidate in [input, address] {
        if let parsed = EmulatorAddress.parse(candidate) {
            require(EmulatorAddress.parse(parsed.bytes) == parsed, "an address re-encodes differently")
        }
    }
    return 0
}

runFuzzer(testOneInput)
