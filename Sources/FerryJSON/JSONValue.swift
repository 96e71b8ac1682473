/// Any JSON value, for Varlink parameters whose shape depends on the method.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    public var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    public var number: Double? { if case .number(let value) = self { value } else { nil } }
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    public subscript(key: String) -> JSONValue? { object?[key] }

    /// Converts any Encodable value (a reply struct) to a JSONValue (`.null` if it cannot be
    /// encoded, e.g. a non-finite number).
    public static func from<T: Encodable>(_ value: T) -> JSONValue {
        (try? JSONValueEncoder.encode(value)) ?? .null
    }

    /// The same, with the reason when it cannot be encoded (an `EncodingError`).
    public static func encoding<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONValueEncoder.encode(value)
    }

    /// Decodes a typed value from this JSON.
    public func decode<T: Decodable>(_ type: T.Type) -> T? {
        try? JSONValueDecoder.decode(type, from: self)
    }

    /// The same, with the reason when it does not fit (a `DecodingError`).
    public func decoding<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONValueDecoder.decode(type, from: self)
    }

    /// Compact JSON, keys sorted (the same document every time); '/' is not escaped.
    public func compactBytes() -> [UInt8] { JSONWriter.bytes(self) }

    /// `compactBytes` as text.
    public func encodedString() -> String {
        String(decoding: JSONWriter.bytes(self), as: UTF8.self)
    }

    /// Exactly one JSON value, or nil.
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        JSONParser.parse(bytes)
    }

    /// Exactly one JSON value, with the keys of the root object and of the object at
    /// `root[member]` in written order (each nil when there is no such object; `member` nil asks
    /// for the root's order only).
    /// One value inside a document: the one starting at `offset` (spaces before it skipped),
    /// and the offset just after it; nil if there is no valid value there. `depth`: how deep in
    /// the document it is, counted against the parser's nesting bound.
    public static func parse(_ bytes: [UInt8], valueAt offset: Int, depth: Int = 1) -> (value: JSONValue, end: Int)? {
        JSONParser.parse(bytes, valueAt: offset, depth: depth)
    }

    public static func parse(_ bytes: [UInt8], keyOrderOf member: String?) -> (value: JSONValue, rootKeys: [String]?, memberKeys: [String]?)? {
        JSONParser.parse(bytes, keyOrderOf: member).map { ($0.value, $0.order.root, $0.order.member) }
    }
}
