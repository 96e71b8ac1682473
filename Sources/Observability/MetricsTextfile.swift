import FDStore
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor

/// Takes the metrics snapshot from ferryd's state and writes the textfile collector's file.
final class MetricsTextfile {
    let path: String?
    private let logger: Logger
    /// The last text written: an unchanged snapshot is not written again.
    private var written: String?
    /// Whether a store entry (by id) is a LUO session; an entry's fd never changes.
    private var sessionEntries: [UInt64: Bool] = [:]
    /// Whether the last write failed, so the failure is logged once, not on every change.
    private var failing = false

    init(path: String?, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    func snapshot(_ manager: Manager, history: UpdateHistory, incoming: Set<String>) -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        snapshot.kexecs = UInt64(manager.kexecCount)
        snapshot.totals = history.totals
        snapshot.lastUpdate = history.last
        var seen: [UInt64: Bool] = [:]
        for service in manager.services.values where !service.store.isEmpty {
            snapshot.storeEntries[service.name.full] = service.store.count
            for entry in service.store.entries {
                let isSession = sessionEntries[entry.id] ?? (SessionIdentity.of(entry.descriptor) != nil)
                seen[entry.id] = isSession
                guard isSession else { continue }
                snapshot.sessionsHeld += 1
                if incoming.contains("\(service.name.full)\u{0}\(entry.name)") { snapshot.incomingSessionsHeld += 1 }
            }
        }
        sessionEntries = seen
        return snapshot
    }

    /// Writes `text` atomically unless it is what the file already holds.
    func write(_ text: String) {
        guard let path, text != written else { return }
        do throws(SystemCallError) {
            if written == nil, let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                try AtomicFile.makeFolders(String(path[..<slash]))
            }
            try AtomicFile.write(Array(text.utf8), to: path)
            written = text
            if failing { logger.info("metrics: writing \(path) works again") }
            failing = false
        } catch {
            if !failing { logger.warning("metrics: cannot write \(path): \(error); trying again at the next change") }
            failing = true
        }
    }
}
