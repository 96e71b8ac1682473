// NotifyMessage.parse: one sd_notify datagram, exactly as ferryd's notify socket receives it.
import FuzzSupport
import Supervisor

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    switch NotifyMessage.parse(input) {
    case .success(let message):
        require(!message.assignments.isEmpty, "a parsed message has an assignment")
        require(input.count <= NotifyMessage.maximumSize, "a message longer than the maximum was accepted")
        for (key, value) in message.assignments {
            require(!key.isEmpty && !key.contains("="), "key '\(key)'")
            require(!key.contains("\n") && !value.contains("\n"), "an assignment spans lines")
            require(!key.contains("\0") && !value.contains("\0"), "an assignment holds a NUL")
        }
        _ = message.value("FDNAME")
        _ = message.isSet("FDSTORE")
        // What was read reads back the same when written out again, one assignment a line
        // (values ending in CR excepted: the parser drops one CR per line, as CRLF).
        if !message.assignments.contains(where: { $0.value.hasSuffix("\r") }) {
            let again = message.assignments.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            let reparsed = try? NotifyMessage.parse(Array(again.utf8)).get()
            require(reparsed.map { $0.keys == message.keys && $0.assignments.map(\.value) == message.assignments.map(\.value) } == true,
                    "re-parse differs")
        }
    case .failure(let refusal):
        _ = refusal.description
    }
    // The same bytes, marked truncated by recvmsg, are always refused.
    if case .success = NotifyMessage.parse(input, truncated: true) { require(false, "a truncated message was accepted") }
    return 0
}

runFuzzer(testOneInput)
