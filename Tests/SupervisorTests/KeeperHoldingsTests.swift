import FerryJSON
import FerrySystem
@testable import Orchestrator
import SystemPackage
import Testing

/// What the keeper holds, in-process: a session held again replaces the older copy, forgetting
/// closes exactly what it names, and the wire carries items and fds one to one.
@Suite struct KeeperHoldingsTests {
    @Test func aSessionHeldAgainReplacesItsOlderCopyAndForgettingCloses() throws {
        var holdings = KeeperHoldings()
        holdings.hold(.store(unit: "a.service", name: "x"), try Memfd.create(name: "x", contents: [1]))
        holdings.hold(.store(unit: "a.service", name: "x"), try Memfd.create(name: "x", contents: [2]))
        holdings.hold(.session("ferry", role: "outgoing"), try Memfd.create(name: "s1", contents: []))
        let older = holdings.descriptors[2]
        holdings.hold(.session("ferry", role: "incoming"), try Memfd.create(name: "s2", contents: []))
        #expect(holdings.count == 3)
        #expect(!FileDescriptor(rawValue: older).isOpen)
        #expect(holdings.items.last?.role == "incoming")

        let stores = holdings.descriptors.prefix(2)
        #expect(holdings.forget { $0.kind == .store } == 2)
        #expect(stores.allSatisfy { !FileDescriptor(rawValue: $0).isOpen })
        #expect(holdings.items.map(\.name) == ["ferry"])
        #expect(FileDescriptor(rawValue: holdings.descriptors[0]).isOpen)
        #expect(holdings.summary == "0 store fd(s), 1 session(s)")
    }

    @Test func theWireCarriesItemsAndFdsOneToOneInBatches() throws {
        let pair = try UnixSocket.pair(.sequentialPacket)
        var sent = OwnedFDs()
        var items: [KeeperWire.Item] = []
        for index in 0..<(KeeperWire.batchLimit + 5) {
            sent.append(try Memfd.create(name: "m", contents: Array("\(index)".utf8)))
            items.append(.store(unit: "u\(index % 3).service", name: "fd \(index)"))
        }
        try KeeperWire.sendItems(pair.first.borrowed, items, fds: sent.rawValues)
        var received: [KeeperWire.Item] = []
        var contents: [String] = []
        while received.count < items.count {
            guard var message = try KeeperWire.receive(pair.second.borrowed) else {
                Issue.record("end of file after \(received.count) item(s)")
                return
            }
            #expect(message.op == "hold")
            for (index, item) in message.items.enumerated() {
                received.append(try #require(item))
                guard let fd = message.descriptors.take(at: index) else {
                    Issue.record("no fd for item \(index)")
                    continue
                }
                contents.append(String(decoding: try FileIO.readAll(fd.borrowed), as: UTF8.self))
            }
        }
        #expect(received == items)
        #expect(contents == (0..<items.count).map { "\($0)" })
    }
}
