/// A small, strict JSON parser into `JSONValue`: one pass over the bytes, nesting bounded, no
/// exceptions on the hot path. Foundation's decoder, asked for "any value", tries each type in turn
/// and was the slowest part of a restore (400 ms for a 1,000-entry mapping under TCG).
struct JSONParser {
    private let bytes: [UInt8]
    private var position = 0
    private static let maximumDepth = 512
    /// Also record the key order of the root object and of the object at this member of the
    /// root: a decoded object forgets its order, and systemd restores units in document order.
    private let recordsOrder: Bool
    private let orderedMember: String?
    /// The root member being parsed, to know when `orderedMember` is reached.
    private var rootKey: String?
    private(set) var order = KeyOrder()

    /// Keys in written order.
    struct KeyOrder {
        var root: [String]?
        var member: [String]?
    }

    init(_ bytes: [UInt8], recordingKeyOrder: Bool = false, of member: String? = nil) {
        self.bytes = bytes
        self.recordsOrder = recordingKeyOrder
        self.orderedMember = member
    }

    /// The value of the whole document, or nil for anything that is not exactly one JSON value.
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        var parser = JSONParser(bytes)
        return parser.document()
    }

    /// The whole document, with the key order of the root object and of the object at `root[member]`.
    static func parse(_ bytes: [UInt8], keyOrderOf member: String?) -> (value: JSONValue, order: KeyOrder)? {
        var parser = JSONParser(bytes, recordingKeyOrder: true, of: member)
        return parser.document().map { ($0, parser.order) }
    }

    /// One value starting at `offset` (spaces before it skipped), and the offset just after it.
    static func parse(_ bytes: [UInt8], valueAt offset: Int, depth: Int) -> (value: JSONValue, end: Int)? {
        var parser = JSONParser(bytes)
        parser.position = offset
        return parser.value(depth: depth).map { ($0, parser.position) }
    }

    private mutating func document() -> JSONValue? {
        guard let value = value(depth: 0) else { return nil }
        skipSpace()
        return position == bytes.count ? value : nil
    }

    private mutating func startOrder(atDepth depth: Int) -> WritableKeyPath<KeyOrder, [String]?>? {
        guard recordsOrder else { return nil }
        let path: WritableKeyPath<KeyOrder, [String]?>
        switch depth {
        case 0: path = \.root
        case 1 where orderedMember != nil && rootKey == orderedMember: path = \.member
        default: return nil
        }
        order[keyPath: path] = []
        return path
    }

    private mutating func value(depth: Int) -> JSONValue? {
        guard depth < Self.maximumDepth else { return nil }
        skipSpace()
        guard position < bytes.count else { return nil }
        switch bytes[position] {
        case UInt8(ascii: "{"): return object(depth: depth)
        case UInt8(ascii: "["): return array(depth: depth)
        case UInt8(ascii: "\""): return string().map { .string($0) }
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func object(depth: Int) -> JSONValue? {
        position += 1
        var members: [String: JSONValue] = [:]
        let ordered = startOrder(atDepth: depth)
        skipSpace()
        if take(UInt8(ascii: "}")) { return .object(members) }
        while true {
            skipSpace()
            guard let key = string() else { return nil }
            if let ordered { order[keyPath: ordered]?.append(key) }
            if depth == 0 { rootKey = key }
            skipSpace()
            guard take(UInt8(ascii: ":")), let member = value(depth: depth + 1) else { return nil }
            members[key] = member
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}")) ? .object(members) : nil
        }
    }

    private mutating func array(depth: Int) -> JSONValue? {
        position += 1
        var elements: [JSONValue] = []
        skipSpace()
        if take(UInt8(ascii: "]")) { return .array(elements) }
        while true {
            guard let element = value(depth: depth + 1) else { return nil }
            elements.append(element)
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]")) ? .array(elements) : nil
        }
    }

    private mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        // Most strings have no escape: one scan, one validated copy.
        var end = position
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            defer { position = end + 1 }
            return String(validating: bytes[position..<end], as: UTF8.self)
        }
        var out = Array(bytes[position..<end])
        position = end
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""): return String(validating: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { return nil }
                let escaped = bytes[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(),
                            (0xDC00..<0xE000).contains(low)
                        else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: return nil
                }
            case 0..<0x20: return nil
            default: out.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard position + 4 <= bytes.count,
            let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else { return nil }
        position += 4
        return value
    }

    private mutating func number() -> JSONValue? {
        let start = position
        // Plain non-negative integers (tokens, sizes, times) without a detour through a String.
        var integer: UInt64 = 0
        while position < bytes.count, position - start < 15, bytes[position] >= 0x30, bytes[position] <= 0x39 {
            integer = integer * 10 + UInt64(bytes[position] - 0x30)
            position += 1
        }
        let isDelimited = position == bytes.count || !Self.isNumberByte(bytes[position])
        // A leading zero followed by more digits is not JSON: left to the general path to refuse.
        if position > start, isDelimited, !(bytes[start] == 0x30 && position - start > 1) { return .number(Double(integer)) }
        position = start
        while position < bytes.count, Self.isNumberByte(bytes[position]) { position += 1 }
        guard position > start, let value = Double(String(decoding: bytes[start..<position], as: UTF8.self)) else {
            return nil
        }
        return .number(value)
    }

    private mutating func literal(_ text: String, _ value: JSONValue) -> JSONValue? {
        let expected = Array(text.utf8)
        guard position + expected.count <= bytes.count, Array(bytes[position..<position + expected.count]) == expected else {
            return nil
        }
        position += expected.count
        return value
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "e"), UInt8(ascii: "E"): true
        default: false
        }
    }
}
