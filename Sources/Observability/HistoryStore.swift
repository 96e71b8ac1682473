import FerryJSON
import FerrySystem
import LiveUpdateReports
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `history.json` in the state folder (default /var/lib/ferry): read at start, replaced
/// atomically after every change, bounded in size.
public struct HistoryStore {
    public let folder: String
    private let encoding = HistoryEncoding()
    public var path: String { "\(folder)/history.json" }
    /// The file never grows past this; the oldest records go first.
    public static let maximumBytes = 512 << 10
    /// What rides the mapping across a kexec: the newest few records, within this many bytes
    /// (the mapping memfd keeps 64 KiB beside the stores' entries).
    public static let carriedRecords = 4
    public static let carriedBytes = 24 << 10

    public init(folder: String) { self.folder = folder }

    /// The history kept here; empty when there is none yet. An unreadable file is kept aside
    /// (`history.json.corrupt`) rather than overwritten, and reported.
    public func load(logger: Logger) -> UpdateHistory {
        guard let text = FileIO.text(ofFile: path, limit: Self.maximumBytes * 2) else { return UpdateHistory() }
        guard let history = JSONValue.parse(Array(text.utf8))?.decode(UpdateHistory.self) else {
            logger.warning("update history \(path) cannot be read as schema \(UpdateRecord.schemaVersion); kept as \(path).corrupt, starting a new one")
            _ = rename(path, "\(path).corrupt")
            return UpdateHistory()
        }
        return history
    }

    public func save(_ history: UpdateHistory) throws(SystemCallError) {
        try AtomicFile.makeFolders(folder)
        try AtomicFile.write(encoding.encode(history, within: Self.maximumBytes), to: path)
    }

    /// The newest records that fit in `limit` bytes (the totals are always kept).
    public static func encode(_ history: UpdateHistory, within limit: Int) -> [UInt8] {
        HistoryEncoding().encode(history, within: limit)
    }

    /// The part of the history that rides `state.ferry` across a kexec.
    public static func carried(_ history: UpdateHistory) -> JSONValue {
        var bounded = history
        bounded.trim(to: carriedRecords)
        return JSONValue.parse(encode(bounded, within: carriedBytes)) ?? .null
    }
}
