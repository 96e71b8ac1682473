import FerrySystem
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines to stderr; with `<N>` syslog priority prefixes when stderr is a journal stream
/// (JOURNAL_STREAM names stderr's device and inode), plain with a level word otherwise.
///
/// journald reads a stream line by line and takes a prefix from each line on its own, so a
/// message of several lines gets the prefix on every line (else its later lines would be logged
/// at the stream's default priority, info). A JOURNAL_STREAM inherited from a parent whose
/// stderr went to the journal while this process's goes elsewhere names another file: then no
/// prefix, or a reader of that file would see `<6>` noise.
public struct DaemonLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let journal: Bool

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
        self.journal = Self.journalStream() != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var bytes = Array(Self.format("\(event.message)", level: event.level, journal: journal).utf8)
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

    /// The text written for one message: each line prefixed for the journal, or the first line
    /// named and levelled for a plain file or terminal.
    public static func format(_ message: String, level: Logger.Level, journal: Bool) -> String {
        guard journal else { return "ferryd[\(getpid())]: \(level): \(message)\n" }
        let prefix = "<\(priority(level))>"
        return message.split(separator: "\n", omittingEmptySubsequences: false).map { prefix + $0 + "\n" }.joined()
    }

    public static func stderrIsJournal() -> Bool { journalStream() != nil }

    /// `$JOURNAL_STREAM` when it names stderr's device and inode (as systemd sets it: both decimal,
    /// `DEVICE:INODE`), nil otherwise.
    public static func journalStream() -> String? {
        guard let value = getenv("JOURNAL_STREAM") else { return nil }
        let text = String(cString: value)
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
            let key = try? FileIdentity.inode(.standardError)
        else { return nil }
        return key.device == device && key.inode == inode ? text : nil
    }
}
