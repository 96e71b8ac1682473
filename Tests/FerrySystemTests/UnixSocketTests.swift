import CFerry
import FerrySystem
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct UnixSocketTests {
    @Test(arguments: [0, 1, 5, 16])
    func passesDescriptors(count: Int) throws {
        let pair = try UnixSocket.pair(.sequentialPacket)
        var sent = OwnedFDs()
        for index in 0..<count { sent.append(try Memfd.create(name: "m\(index)", contents: [UInt8(index)])) }
        try UnixSocket.send(pair.first.borrowed, [42], descriptors: sent.rawValues)
        var message = try UnixSocket.receive(pair.second.borrowed, maximumBytes: 16, maximumDescriptors: 16)
        let bytes = message.bytes
        let received = message.descriptors.count
        let truncated = message.controlTruncated
        #expect(bytes == [42])
        #expect(received == count)
        #expect(!truncated)
        for index in 0..<count {
            guard let received = message.descriptors.take(at: index) else {
                Issue.record("descriptor \(index) missing")
                continue
            }
            #expect(received.borrowed.isCloseOnExec)
            #expect(try FileIdentity.sameOpenFile(received.borrowed, FileDescriptor(rawValue: sent.rawValues[index])))
        }
    }

    @Test func tooSmallControlBufferIsReported() throws {
        let pair = try UnixSocket.pair(.datagram)
        var sent = OwnedFDs()
        for index in 0..<4 { sent.append(try Memfd.create(name: "m\(index)")) }
        try UnixSocket.send(pair.first.borrowed, [1], descriptors: sent.rawValues)
        let message = try UnixSocket.receive(pair.second.borrowed, maximumBytes: 16, maximumDescriptors: 1)
        let truncated = message.controlTruncated
        let received = message.descriptors.count
        #expect(truncated)
        #expect(received <= 2)
    }

    @Test func peerAddressOfBoundSocketPairEnd() throws {
        // The emulator names its end of a pair after creation; the other end must see that name.
        let pair = try UnixSocket.pair(.sequentialPacket)
        let address = Array("\0ferry-test-\(getpid())-peer".utf8)
        try UnixSocket.bind(pair.first.borrowed, address: address)
        #expect(try UnixSocket.peerAddress(pair.second.borrowed) == address)
        #expect(try UnixSocket.peerAddress(pair.first.borrowed) == [])
    }

    @Test func endOfFileWhenPeerCloses() throws {
        let pair = try UnixSocket.pair(.sequentialPacket)
        let ours = pair.first
        _ = consume pair.second
        let message = try UnixSocket.receive(ours.borrowed, maximumBytes: 16, maximumDescriptors: 0)
        let endOfFile = message.isEndOfFile
        #expect(endOfFile)
    }

    @Test func credentialsArePassed() throws {
        let pair = try UnixSocket.pair(.datagram)
        try UnixSocket.enablePassCredentials(pair.second.borrowed)
        try UnixSocket.send(pair.first.borrowed, Array("READY=1".utf8))
        let message = try UnixSocket.receive(pair.second.borrowed, maximumBytes: 64, maximumDescriptors: 0,
                                             credentials: true)
        let credentials = message.credentials
        #expect(credentials?.pid == getpid())
        #expect(try UnixSocket.peerCredentials(pair.first.borrowed).pid == getpid())
    }

    @Test func listenAndConnectByPath() throws {
        let path = "/tmp/ferry-socket-test-\(getpid()).sock"
        defer { unlink(path) }
        let listener = try UnixSocket.listen(path: path, kind: .sequentialPacket)
        let client = try UnixSocket.connect(path: path, kind: .sequentialPacket)
        let server = try UnixSocket.accept(listener.borrowed)
        try UnixSocket.send(client.borrowed, [7, 8])
        let bytes = try UnixSocket.receive(server.borrowed, maximumBytes: 8, maximumDescriptors: 0).bytes
        #expect(bytes == [7, 8])
        #expect(throws: SystemCallError("connect(/tmp/ferry-no-such.sock)", .noSuchFileOrDirectory)) {
            _ = try UnixSocket.connect(path: "/tmp/ferry-no-such.sock", kind: .sequentialPacket)
        }
    }
}

@Suite struct EventLoopTests {
    @Test func runsHandlersOfReadyDescriptors() throws {
        let loop = try EventLoop()
        let pair = try UnixSocket.pair(.datagram)
        nonisolated(unsafe) var seen: [UInt8] = []
        let reader = pair.second.rawValue
        try loop.watch(reader, for: .readable) { _ in
            if let message = try? UnixSocket.receive(FileDescriptor(rawValue: reader), maximumBytes: 8, maximumDescriptors: 0) {
                seen += message.bytes
            }
            loop.stop()
        }
        try UnixSocket.send(pair.first.borrowed, [3])
        try loop.run()
        #expect(seen == [3])
        loop.unwatch(reader)
        #expect(loop.watchedCount == 0)
    }
}
