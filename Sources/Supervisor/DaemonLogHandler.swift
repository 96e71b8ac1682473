import FerrySystem
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines to stderr; with `<N>` syslog priority prefixes when stderr is a journal stream
/// (JOURNAL_STREAM names stderr's device and inode), plain with a level word otherwise.
public struct DaemonLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let journal: Bool

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
        self.journal = Self.stderrIsJournal()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let text = journal ? "<\(Self.priority(event.level))>\(event.message)\n" : "ferryd[\(getpid())]: \(event.level): \(event.message)\n"
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
            let key = try? FileIdentity.inode(.standardError)
        else { return false }
        return key.device == device && key.inode == inode
    }
}
