/// One sd_notify datagram: newline-separated `KEY=VALUE` assignments.
public struct NotifyMessage: Sendable, Equatable {
    /// The assignments in order; a key given twice keeps its last value in `value(_:)`.
    public var assignments: [(key: String, value: String)]

    /// systemd reads datagrams into a buffer of this size; anything longer is refused.
    public static let maximumSize = 4096

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case empty
        case tooLong
        case invalidUTF8
        case containsNUL
        case lineWithoutAssignment(String)

        public var description: String {
            switch self {
            case .empty: "empty message"
            case .tooLong: "message longer than \(NotifyMessage.maximumSize) bytes (truncated)"
            case .invalidUTF8: "message is not valid UTF-8"
            case .containsNUL: "message contains a NUL byte"
            case .lineWithoutAssignment(let line): "line without '=': '\(line.prefix(60))'"
            }
        }
    }

    public static func == (a: NotifyMessage, b: NotifyMessage) -> Bool {
        a.assignments.map { "\($0.key)=\($0.value)" } == b.assignments.map { "\($0.key)=\($0.value)" }
    }

    public init(assignments: [(key: String, value: String)]) { self.assignments = assignments }

    /// Parses a datagram; `truncated` is MSG_TRUNC from recvmsg.
    public static func parse(_ bytes: [UInt8], truncated: Bool = false) -> Result<NotifyMessage, Refusal> {
        if truncated || bytes.count > maximumSize { return .failure(.tooLong) }
        if bytes.isEmpty { return .failure(.empty) }
        if bytes.contains(0) { return .failure(.containsNUL) }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.invalidUTF8) }
        var assignments: [(key: String, value: String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let equals = line.firstIndex(of: "="), equals != line.startIndex else {
                return .failure(.lineWithoutAssignment(String(line)))
            }
            assignments.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
        if assignments.isEmpty { return .failure(.empty) }
        return .success(NotifyMessage(assignments: assignments))
    }

    public func value(_ key: String) -> String? { assignments.last { $0.key == key }?.value }

    public func isSet(_ key: String) -> Bool { value(key) == "1" }

    public var keys: [String] { assignments.map(\.key) }
}
