// The Varlink codec as the control socket uses it: a byte stream cut into chunks (as recv returns
// them) fed to Varlink.Framer, every message decoded as a call (server side) and as a reply
// (client side).
import FerryControl
import FerryJSON
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var reader = FuzzReader(bytes(data, size))
    // The first byte sets the chunk size and the framer's limit, so both paths are reached.
    let control = reader.byte()
    let chunk = Int(control & 0x3F) + 1
    let maximum = control & 0x40 != 0 ? 64 : Varlink.Framer.maximumMessage
    let stream = reader.rest()
    var framer = Varlink.Framer(maximumMessage: maximum)
    var messages: [[UInt8]] = []
    var overflowed = false
    var offset = 0
    while offset < stream.count {
        let piece = stream[offset..<min(stream.count, offset + chunk)]
        offset += piece.count
        guard let got = framer.feed(piece) else {
            overflowed = true
            break
        }
        messages += got
    }
    // Without an overflow the messages are exactly the NUL-terminated pieces of the stream.
    if !overflowed {
        var expected = stream.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
        expected.removeLast()  // what follows the last NUL is still buffered
        require(messages == expected, "framing differs: \(messages.count) vs \(expected.count) messages")
    }
    for message in messages {
        require(!message.contains(0), "a framed message holds a NUL")
        if let call = Varlink.Call.decode(message) {
            let again = Varlink.Call.decode(Array(call.encoded().dropLast()))
            require(again == call || !finite(call.parameters), "a call re-encodes differently: \(call)")
        }
        if let reply = Varlink.Reply.decode(message) {
            let again = Varlink.Reply.decode(Array(reply.encoded().dropLast()))
            require(again == reply || !finite(reply.parameters), "a reply re-encodes differently")
        }
    }
    return 0
}

/// Infinite numbers (1e999) have no JSON form; the encoder writes the whole object as null.
func finite(_ members: [String: JSONValue]) -> Bool {
    func check(_ value: JSONValue) -> Bool {
        switch value {
        case .number(let number): number.isFinite
        case .array(let items): items.allSatisfy(check)
        case .object(let members): members.values.allSatisfy(check)
        default: true
        }
    }
    return members.values.allSatisfy(check)
}

runFuzzer(testOneInput)
