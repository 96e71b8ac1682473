import FerryJSON
import LiveUpdateReports

/// The history as JSON bytes, bounded, without encoding every record again at every save: each
/// record is encoded once (again only when it changes) and the document is joined from the
/// pieces, so a host with hundreds of units does not pay for its whole history at every change.
final class HistoryEncoding {
    private var pieces: [String: (record: UpdateRecord, bytes: [UInt8])] = [:]

    /// `{"schema":…,"sequence":…,"totals":…,"updates":[…]}` with the newest records that fit
    /// in `limit` bytes (the totals always).
    func encode(_ history: UpdateHistory, within limit: Int) -> [UInt8] {
        var head = history
        head.updates = []
        var document = Self.json(head)
        // `"updates":[]}` closes the empty document; the records go between the brackets.
        precondition(document.suffix(2) == Array("]}".utf8))
        document.removeLast(2)
        var records: [[UInt8]] = []
        var size = document.count + 2
        for record in history.updates.reversed() {
            let bytes = piece(record)
            guard size + bytes.count + 1 <= limit else { break }
            size += bytes.count + 1
            records.append(bytes)
        }
        for (index, bytes) in records.reversed().enumerated() {
            if index > 0 { document.append(UInt8(ascii: ",")) }
            document += bytes
        }
        pieces = pieces.filter { id, _ in history.updates.contains { $0.id == id } }
        return document + Array("]}".utf8)
    }

    private func piece(_ record: UpdateRecord) -> [UInt8] {
        if let cached = pieces[record.id], cached.record == record { return cached.bytes }
        let bytes = Self.json(record)
        pieces[record.id] = (record, bytes)
        return bytes
    }

    /// Sorted keys: the same history always gives the same bytes.
    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        JSONValue.from(value).compactBytes()
    }
}
