import CFerry
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Each unit's stdout and stderr: one pipe per unit, read by ferryd, every line logged under
/// the unit's name (a `<N>` syslog prefix sets its level, as the journal reads it) and the last
/// lines kept for `ferryctl logs`.
///
/// ferryd keeps both ends, so a unit that restarts writes into the same pipe and nothing is cut
/// off between processes; both ends ride a re-exec.
public final class UnitOutput {
    /// Lines kept per unit.
    public static let keptLines = 500

    final class Channel {
        let reader: OwnedFD
        let writer: OwnedFD
        var partial: [UInt8] = []
        var lines: [String] = []
        var watch: EventLoop.Watch?

        init(reader: consuming OwnedFD, writer: consuming OwnedFD) {
            self.reader = reader
            self.writer = writer
        }
    }

    private let loop: EventLoop
    private let logger: Logger
    private var channels: [UnitName: Channel] = [:]

    init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    /// The write end to give `unit`'s processes as stdout and stderr (ferryd keeps owning it);
    /// nil when no pipe can be made (the process then writes to ferryd's own stderr).
    func writer(for unit: UnitName) -> CInt? {
        if let channel = channels[unit] { return channel.writer.rawValue }
        var ends: [CInt] = [-1, -1]
        guard ferry_pipe_cloexec(&ends) == 0 else {
            logger.warning("\(unit): no pipe for its output (\(Errno(rawValue: errno).symbolicName)); it goes to ferryd's stderr")
            return nil
        }
        return adopt(unit, reader: ends[0], writer: ends[1])?.writer.rawValue
    }

    /// Takes a unit's pipe ends (a re-exec hands them over).
    @discardableResult
    func adopt(_ unit: UnitName, reader: CInt, writer: CInt) -> Channel? {
        _ = ferry_fcntl_int(reader, F_SETFL, ferry_fcntl(reader, F_GETFL) | O_NONBLOCK)
        for fd in [reader, writer] { _ = ferry_fcntl_int(fd, F_SETFD, FD_CLOEXEC) }
        let channel = Channel(reader: OwnedFD(adopting: reader), writer: OwnedFD(adopting: writer))
        channel.watch = try? loop.ownedWatch(reader, for: .readable) { [unowned self, unowned channel] _ in
            drain(channel, of: unit)
        }
        channels[unit] = channel
        return channel
    }

    /// The last `count` lines `unit` wrote.
    public func lines(of unit: UnitName, count: Int = UnitOutput.keptLines) -> [String] {
        Array((channels[unit]?.lines ?? []).suffix(count))
    }

    /// Both ends of every unit's pipe, for a re-exec.
    func descriptors() -> [UnitName: (reader: CInt, writer: CInt)] {
        channels.mapValues { ($0.reader.rawValue, $0.writer.rawValue) }
    }

    private func drain(_ channel: Channel, of unit: UnitName) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        // Bounded per wake-up, so a chatty unit cannot hold the loop.
        for _ in 0..<16 {
            guard case .success(let count) = systemCallResult({ read(channel.reader.rawValue, &chunk, chunk.count) }), count > 0 else { break }
            channel.partial += chunk[0..<count]
            while let newline = channel.partial.firstIndex(of: 0x0A) {
                record(String(decoding: channel.partial[..<newline], as: UTF8.self), in: channel, of: unit)
                channel.partial.removeSubrange(...newline)
            }
            if channel.partial.count > 8192 {
                record(String(decoding: channel.partial, as: UTF8.self), in: channel, of: unit)
                channel.partial = []
            }
        }
    }

    private func record(_ raw: String, in channel: Channel, of unit: UnitName) {
        var line = Substring(raw)
        var level = Logger.Level.info
        if line.count >= 3, line.first == "<", let digit = line.dropFirst().first?.wholeNumberValue, line.dropFirst(2).first == ">" {
            level = [.critical, .critical, .critical, .error, .warning, .notice, .info, .debug][min(digit, 7)]
            line = line.dropFirst(3)
        }
        let text = Self.printable(line)
        logger.log(level: level, "\(unit): \(text)")
        channel.lines.append(text)
        if channel.lines.count > Self.keptLines { channel.lines.removeFirst(channel.lines.count - Self.keptLines) }
    }

    /// Control characters (terminal escapes among them) shown as \xNN, so a unit cannot drive
    /// the terminal of whoever reads the log.
    static func printable(_ text: Substring) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 && scalar != "\t" || scalar.value == 0x7F {
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
