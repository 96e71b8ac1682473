import FerryJSON

extension LiveUpdateMapping {
    /// The mapping as Ferry writes it, read in one pass without a JSON tree for its entries: a
    /// tree of one dictionary per carried fd was most of a restore's parse under TCG (125 ms for
    /// 5,000 entries). Only `state` and keys it does not know go through the general parser.
    ///
    /// nil for anything the tolerant reader (`decode`) would read differently or report on: an
    /// escape in a name, a duplicate key, an unknown type, an invalid unit name, a token used
    /// twice or given as a string, a missing version. `decode` then reads it, with its problems.
    static func quickRead(_ bytes: [UInt8], isValidUnit: (String) -> Bool) -> LiveUpdateMapping? {
        var reader = QuickReader(bytes: bytes)
        return reader.mapping(isValidUnit: isValidUnit)
    }
}

private struct QuickReader {
    let bytes: [UInt8]
    var position = 0

    /// The largest token read as is: above it a JSON number is not exact in a Double, and the
    /// tolerant reader, which goes through one, could read another value.
    static let largestExactToken: UInt64 = 1 << 53

    mutating func mapping(isValidUnit: (String) -> Bool) -> LiveUpdateMapping? {
        var version: UInt64?
        var state: [String: JSONValue] = [:]
        var units: [(unit: String, entries: [LiveUpdateMapping.Entry])] = []
        let complete = members { key, reader in
            switch key {
            case "version":
                guard let number = reader.integer() else { return false }
                version = number
            case "state":
                guard case .object(let object)? = reader.generalValue() else { return false }
                state = object
            case "units":
                guard let read = reader.units(isValidUnit: isValidUnit) else { return false }
                units = read
            default:
                return reader.generalValue() != nil
            }
            return true
        }
        skipSpace()
        guard complete, position == bytes.count, let version, version <= LiveUpdateMapping.version else { return nil }
        return LiveUpdateMapping(units: units, state: state)
    }

    private mutating func units(isValidUnit: (String) -> Bool) -> [(unit: String, entries: [LiveUpdateMapping.Entry])]? {
        var units: [(unit: String, entries: [LiveUpdateMapping.Entry])] = []
        var places: Set<Place> = []
        let complete = members { unit, reader in
            guard isValidUnit(unit) else { return false }
            var entries: [LiveUpdateMapping.Entry]?
            let unitComplete = reader.members { key, reader in
                guard key == "fdstore" else { return reader.generalValue() != nil }
                entries = reader.entries(places: &places)
                return entries != nil
            }
            guard unitComplete, let entries else { return false }
            units.append((unit, entries))
            return true
        }
        return complete ? units : nil
    }

    private struct Place: Hashable {
        var shard: String?
        var token: UInt64
    }

    private mutating func entries(places: inout Set<Place>) -> [LiveUpdateMapping.Entry]? {
        skipSpace()
        guard take(UInt8(ascii: "[")) else { return nil }
        var entries: [LiveUpdateMapping.Entry] = []
        skipSpace()
        if take(UInt8(ascii: "]")) { return entries }
        while true {
            guard let entry = entry() else { return nil }
            if let place = entry.place, !places.insert(place).inserted { return nil }
            entries.append(entry.value)
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]")) ? entries : nil
        }
    }

    /// One entry. Its keys are matched as bytes (no string made for them, none kept): an entry
    /// per carried fd, thousands of them.
    private mutating func entry() -> (value: LiveUpdateMapping.Entry, place: Place?)? {
        enum Kind { case fd, session }
        var kind: Kind?, name: String?, session: String?, sessionName: String?
        var token: UInt64?
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        skipSpace()
        if !take(UInt8(ascii: "}")) {
            // Known keys by a bit each; others (rare) by name, checked as the general parser would.
            var seenKnown: UInt8 = 0
            var seenOthers: [String] = []
            func first(_ bit: UInt8) -> Bool {
                defer { seenKnown |= bit }
                return seenKnown & bit == 0
            }
            while true {
                skipSpace()
                guard let key = plainStringBytes() else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                switch key.count {
                case 4 where key.elementsEqual(Self.typeKey):
                    guard first(1) else { return nil }
                    guard let value = plainStringBytes() else { return nil }
                    if value.elementsEqual(Self.fdType) { kind = .fd } else if value.elementsEqual(Self.sessionType) { kind = .session } else { return nil }
                case 4 where key.elementsEqual(Self.nameKey):
                    guard first(2), let value = plainString() else { return nil }
                    name = value
                case 5 where key.elementsEqual(Self.tokenKey):
                    guard first(4), let value = integer() else { return nil }
                    token = value
                case 7 where key.elementsEqual(Self.sessionKey):
                    guard first(8), let value = plainString() else { return nil }
                    session = value
                case 11 where key.elementsEqual(Self.sessionNameKey):
                    guard first(16), let value = plainString() else { return nil }
                    sessionName = value
                default:
                    guard let other = String(validating: key, as: UTF8.self), !seenOthers.contains(other),
                        generalValue() != nil
                    else { return nil }
                    seenOthers.append(other)
                }
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        guard let kind, let name else { return nil }
        switch kind {
        case .fd:
            guard let token, token != LiveUpdateMapping.mappingToken, token <= Self.largestExactToken,
                sessionName == nil, session?.isEmpty != true
            else { return nil }
            return (.fd(name: name, token: token, shard: session), Place(shard: session, token: token))
        case .session:
            guard let sessionName, !sessionName.isEmpty, token == nil, session == nil else { return nil }
            return (.session(name: name, sessionName: sessionName), nil)
        }
    }

    private static let typeKey = Array("type".utf8), nameKey = Array("name".utf8), tokenKey = Array("token".utf8)
    private static let sessionKey = Array("session".utf8), sessionNameKey = Array("sessionName".utf8)
    private static let fdType = Array("fd".utf8), sessionType = Array("luo_session".utf8)

    // MARK: - Pieces of JSON

    /// An object's members, each key once: `member` reads the value after the colon and says
    /// whether it could. False for anything else.
    private mutating func members(_ member: (String, inout QuickReader) -> Bool) -> Bool {
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return false }
        skipSpace()
        if take(UInt8(ascii: "}")) { return true }
        var seen: Set<String> = []
        while true {
            skipSpace()
            guard let key = plainString(), seen.insert(key).inserted else { return false }
            skipSpace()
            guard take(UInt8(ascii: ":")), member(key, &self) else { return false }
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    /// A string without escapes or control characters, valid UTF-8; nil for anything else.
    private mutating func plainString() -> String? {
        plainStringBytes().flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The bytes between the quotes of a string without escapes or control characters (not
    /// checked for UTF-8: compared with ASCII words, or made a String by `plainString`).
    private mutating func plainStringBytes() -> ArraySlice<UInt8>? {
        skipSpace()
        guard take(UInt8(ascii: "\"")) else { return nil }
        var end = position
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else { return nil }
        defer { position = end + 1 }
        return bytes[position..<end]
    }

    /// A non-negative integer written as plain digits (no sign, fraction, exponent or leading zero).
    private mutating func integer() -> UInt64? {
        skipSpace()
        let start = position
        var value: UInt64 = 0
        while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39, position - start < 16 {
            value = value * 10 + UInt64(bytes[position] - 0x30)
            position += 1
        }
        guard position > start, !(bytes[start] == 0x30 && position - start > 1) else { return nil }
        if position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
                UInt8(ascii: "+"), UInt8(ascii: "-"): return nil
            default: break
            }
        }
        return value
    }

    /// Any value, by the general parser (keys the quick reader does not know, and `state`).
    private mutating func generalValue() -> JSONValue? {
        guard let (value, end) = JSONValue.parse(bytes, valueAt: position, depth: 2) else { return nil }
        position = end
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
}
