/// One sd_notify datagram: newline-separated `KEY=VALUE` assignments.
///
/// Read as systemd reads it: a bad line (no `=`, not UTF-8) is skipped with a warning and the
/// rest of the message, its fds included, still counts; CRLF endings and one trailing NUL (as
/// some clients send) are accepted. Only a truncated datagram, an embedded NUL, or a message with
/// no assignment at all is refused whole.
public struct NotifyMessage: Sendable, Equatable {
    /// The assignments in order; a key given twice keeps its last value in `value(_:)`.
    public var assignments: [(key: String, value: String)]
    /// Lines skipped, each with why (for a warning naming the unit).
    public var skipped: [String] = []

    /// systemd reads datagrams into a buffer of this size; anything longer is refused.
    public static let maximumSize = 4096

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case empty
        case tooLong
        case invalidUTF8
        case containsNUL
        case lineWithoutAssignment(String)
        /// Every line was skipped.
        case nothingUsable(String)

        public var description: String {
            switch self {
            case .empty: "empty message"
            case .tooLong: "message longer than \(NotifyMessage.maximumSize) bytes (truncated)"
            case .invalidUTF8: "message is not valid UTF-8"
            case .containsNUL: "message contains a NUL byte"
            case .lineWithoutAssignment(let line): "line without '=': '\(line.prefix(60))'"
            case .nothingUsable(let why): "no usable line: \(why)"
            }
        }
    }

    public static func == (a: NotifyMessage, b: NotifyMessage) -> Bool {
        a.assignments.map { "\($0.key)=\($0.value)" } == b.assignments.map { "\($0.key)=\($0.value)" } && a.skipped == b.skipped
    }

    public init(assignments: [(key: String, value: String)], skipped: [String] = []) {
        self.assignments = assignments
        self.skipped = skipped
    }

    /// Parses a datagram; `truncated` is MSG_TRUNC from recvmsg.
    public static func parse(_ bytes: [UInt8], truncated: Bool = false) -> Result<NotifyMessage, Refusal> {
        if truncated || bytes.count > maximumSize { return .failure(.tooLong) }
        var bytes = bytes[...]
        if bytes.last == 0 { bytes = bytes.dropLast() }
        if bytes.isEmpty { return .failure(.empty) }
        if bytes.contains(0) { return .failure(.containsNUL) }
        var message = NotifyMessage(assignments: [])
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: true) {
            let line = rawLine.last == 0x0D ? rawLine.dropLast() : rawLine
            guard !line.isEmpty else { continue }
            guard let text = String(validating: line, as: UTF8.self) else {
                let key = String(decoding: line.prefix { $0 != UInt8(ascii: "=") }.prefix(40), as: UTF8.self)
                message.skipped.append("\(Refusal.invalidUTF8) (\(key)=…), line ignored")
                continue
            }
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                message.skipped.append("\(Refusal.lineWithoutAssignment(text)), ignored")
                continue
            }
            message.assignments.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
        }
        if message.assignments.isEmpty {
            return .failure(message.skipped.isEmpty ? .empty : .nothingUsable(message.skipped.joined(separator: "; ")))
        }
        return .success(message)
    }

    public func value(_ key: String) -> String? { assignments.last { $0.key == key }?.value }

    public func isSet(_ key: String) -> Bool { value(key) == "1" }

    public var keys: [String] { assignments.map(\.key) }
}

/// A service's answer to "prepare for a live update" (docs/prepare-barrier.md). sd_notify(3) asks
/// for an `X_` prefix on fields of one's own, so systemd ignores these.
public enum PrepareAnswer: Sendable, Equatable {
    /// `X_FERRY_PREPARED=1`: ready to be stopped and carried.
    case prepared
    /// `X_FERRY_REFUSED=REASON`: the update must not go on now; the reason is shown to the operator.
    case refused(String)

    static let preparedKey = "X_FERRY_PREPARED"
    static let refusedKey = "X_FERRY_REFUSED"
}

extension NotifyMessage {
    /// The prepare answer this message carries, if any; a refusal wins over a "prepared" in the
    /// same message, as the careful reading.
    public var prepareAnswer: PrepareAnswer? {
        if let reason = value(PrepareAnswer.refusedKey) {
            return .refused(reason.isEmpty ? "no reason given" : reason)
        }
        return isSet(PrepareAnswer.preparedKey) ? .prepared : nil
    }
}
