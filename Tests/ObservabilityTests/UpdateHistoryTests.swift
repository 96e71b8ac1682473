import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdateReports
import Logging
import Observability
import Testing

@Suite struct UpdateHistoryTests {
    @Test func anOpenRecordUpdatedInPlaceIsCountedOnce() {
        var history = UpdateHistory()
        let update = Samples.update()
        history.record(UpdateRecord(restore: Samples.restore(of: update, notReady: ["vmm.service"]), kernelAfter: "k", id: "x"))
        history.record(UpdateRecord(restore: Samples.restore(of: update), kernelAfter: "k", id: "x"))
        #expect(history.updates.count == 1 && history.updates[0].settled)
        #expect(history.totals.updates == ["succeeded": 1])
        #expect(history.totals.fdsCarried == 4)
        #expect(history.sequence == 2)
    }

    @Test func theListIsBoundedButTheTotalsKeepCounting() {
        var history = UpdateHistory()
        for index in 0..<(UpdateHistory.recordLimit + 10) { history.record(Samples.record(id: "u\(index)")) }
        #expect(history.updates.count == UpdateHistory.recordLimit)
        #expect(history.updates.first?.id == "u10")
        #expect(history.totals.updates["succeeded"] == UInt64(UpdateHistory.recordLimit + 10))
    }

    /// The copy carried across the kexec and the one on disk become one history.
    @Test func mergingTheCarriedCopyKeepsBothAndTheNewerTotals() {
        var disk = UpdateHistory()
        disk.record(Samples.record(id: "old"))
        var carried = disk
        carried.record(Samples.record(id: "new"))
        var lost = UpdateHistory()  // an initramfs: the disk did not survive
        lost.merge(carried)
        #expect(lost.updates.map(\.id) == ["old", "new"])
        disk.merge(carried)
        #expect(disk.updates.map(\.id) == ["old", "new"])
        #expect(disk.totals.updates["succeeded"] == 2)
        // Merging again changes nothing.
        disk.merge(carried)
        #expect(disk.updates.count == 2 && disk.totals.updates["succeeded"] == 2)
    }

    @Test func theFileIsBoundedInBytesAndTheCarriedPartFitsTheMapping() {
        var history = UpdateHistory()
        let many = (0..<400).map { "unit\($0).service" }
        for index in 0..<UpdateHistory.recordLimit { history.record(Samples.record(id: "u\(index)", units: many)) }
        let file = HistoryStore.encode(history, within: HistoryStore.maximumBytes)
        #expect(file.count <= HistoryStore.maximumBytes)
        let kept = JSONValue.parse(file)?.decode(UpdateHistory.self)
        #expect(kept?.updates.last?.id == "u\(UpdateHistory.recordLimit - 1)")
        #expect(kept?.totals == history.totals)
        let carried = HistoryStore.carried(history)
        #expect(carried.encodedString().utf8.count <= HistoryStore.carriedBytes)
        #expect(carried.decode(UpdateHistory.self)?.totals == history.totals)
    }

    @Test func savedAtomicallyAndReadBack() throws {
        let folder = TemporaryDirectory("ferry-history")
        let store = HistoryStore(folder: "\(folder.path)/deeper/state")
        var history = UpdateHistory()
        history.record(Samples.record())
        try store.save(history)
        #expect(store.load(logger: Logger(label: "test")) == history)
        // No temporary file is left beside it.
        #expect(readText("\(folder.path)/deeper/state/.history.json.\(getpid()).tmp").isEmpty)
    }

    @Test func anUnreadableFileIsKeptAsideNotOverwritten() throws {
        let folder = TemporaryDirectory("ferry-history")
        folder.write("history.json", "{ not json")
        let store = HistoryStore(folder: folder.path)
        #expect(store.load(logger: Logger(label: "test")).updates.isEmpty)
        #expect(readText("\(folder.path)/history.json.corrupt") == "{ not json")
    }
}

#if canImport(Glibc)
import Glibc
#endif
