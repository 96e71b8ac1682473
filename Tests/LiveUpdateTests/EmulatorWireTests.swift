import LiveUpdate
import Testing

@Suite struct EmulatorWireTests {
    @Test func requestRoundTrip() {
        let request = EmulatorWire.Request(kind: .ioctl, request: 0xBA40, flags: [.payloadAttached],
                                           argument: [16, 0, 0, 0, 5, 0, 0, 0], text: "x")
        #expect(EmulatorWire.Request.decode(request.encoded()) == request)
    }

    @Test func replyRoundTrip() {
        let reply = EmulatorWire.Reply(errno: 16, output: [1, 2, 3], text: "{}")
        #expect(EmulatorWire.Reply.decode(reply.encoded()) == reply)
    }

    @Test(arguments: [[], [1, 2, 3], Array(repeating: 0xFF, count: 40)])
    func malformedRequestsAreRejected(bytes: [UInt8]) {
        #expect(EmulatorWire.Request.decode(bytes) == nil)
    }

    @Test func truncatedAndOverlongRequestsAreRejected() {
        let good = EmulatorWire.Request(kind: .status).encoded()
        for length in 0..<good.count { #expect(EmulatorWire.Request.decode(Array(good.prefix(length))) == nil) }
        #expect(EmulatorWire.Request.decode(good + [0]) == nil)
        var lying = good
        lying[16] = 0xFF  // argument length far beyond the packet
        #expect(EmulatorWire.Request.decode(lying) == nil)
    }

    @Test func sessionAddressRoundTrip() {
        let name = Array("vm:7/a b".utf8)
        let address = EmulatorAddress(server: "12-ab", kind: .session, serial: 42, name: name)
        #expect(address.bytes.first == 0)
        #expect(EmulatorAddress.parse(address.bytes) == address)
        let device = EmulatorAddress(server: "12-ab", kind: .device, serial: 3)
        #expect(EmulatorAddress.parse(device.bytes) == device)
        #expect(EmulatorAddress.parse(Array("\0other".utf8)) == nil)
        #expect(EmulatorAddress.parse(EmulatorWire.addressPrefix + Array("x:q1".utf8)) == nil)
    }
}
