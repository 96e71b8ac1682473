import FerryJSON

/// The document stored at token 0 of Ferry's LUO session: which unit gets which fd back, in
/// systemd's v1 format (reference-systemd.md §2.2), so the two can read each other's mapping:
///
///     {"version":1,"state":{"kexecsCount":0,...},"units":{"a.service":{"fdstore":[
///       {"type":"fd","name":"state","token":1},
///       {"type":"luo_session","name":"vm0","sessionName":"a-vm0"}]}}}
///
/// Reading is tolerant: unknown keys are ignored, unsigned numbers may be decimal strings, null
/// means unset, and every bad entry is reported and skipped instead of failing the whole document.
public struct LiveUpdateMapping: Sendable, Equatable {
    public static let version: UInt64 = 1
    /// Token of the mapping memfd itself; never a stored fd's token.
    public static let mappingToken: UInt64 = 0
    /// Larger documents are refused unread (a hostile or corrupt mapping must not exhaust memory).
    public static let maximumSize = 16 << 20

    public enum Entry: Sendable, Equatable {
        /// `shard`: the Ferry session holding it when not the one with the mapping (a kernel
        /// before 7.2 takes 128 files per session, so large stores spread over several).
        case fd(name: String, token: UInt64, shard: String? = nil)
        case session(name: String, sessionName: String)

        public var name: String {
            switch self {
            case .fd(let name, _, _), .session(let name, _): name
            }
        }
    }

    /// Units in document order, each with its entries in store order.
    public var units: [(unit: String, entries: [Entry])]
    /// `state`, kept verbatim (kexecsCount, Ferry's own keys, anything a newer writer added).
    public var state: [String: JSONValue]

    public init(units: [(unit: String, entries: [Entry])] = [], state: [String: JSONValue] = [:]) {
        self.units = units
        self.state = state
    }

    public static func == (a: LiveUpdateMapping, b: LiveUpdateMapping) -> Bool {
        a.units.map(\.unit) == b.units.map(\.unit) && a.units.map(\.entries) == b.units.map(\.entries) && a.state == b.state
    }

    public var kexecsCount: UInt32 {
        get { state["kexecsCount"].flatMap(Self.unsigned).map { UInt32(clamping: $0) } ?? 0 }
        set { state["kexecsCount"] = .number(Double(newValue)) }
    }

    // MARK: - Writing

    /// Compact JSON, units and entries in order (the JSON object keeps insertion order by hand).
    public func encoded() -> [UInt8] {
        // Written straight into bytes: one entry per carried fd, thousands of them.
        var text = Array("{\"version\":\(Self.version),\"state\":".utf8)
        text += JSONValue.object(state).compactBytes()
        let written = units.filter { !$0.entries.isEmpty }
        if !written.isEmpty {
            text += ",\"units\":{".utf8
            for (index, unit) in written.enumerated() {
                if index > 0 { text.append(UInt8(ascii: ",")) }
                text += JSONValue.string(unit.unit).compactBytes()
                text += ":{\"fdstore\":[".utf8
                for (position, entry) in unit.entries.enumerated() {
                    if position > 0 { text.append(UInt8(ascii: ",")) }
                    Self.encode(entry, into: &text)
                }
                text += "]}".utf8
            }
            text.append(UInt8(ascii: "}"))
        }
        text.append(UInt8(ascii: "}"))
        return text
    }

    private static func encode(_ entry: Entry, into text: inout [UInt8]) {
        switch entry {
        case .fd(let name, let token, let shard):
            text += "{\"type\":\"fd\",\"name\":".utf8
            text += JSONValue.string(name).compactBytes()
            text += ",\"token\":\(token)".utf8
            if let shard {
                text += ",\"session\":".utf8
                text += JSONValue.string(shard).compactBytes()
            }
            text.append(UInt8(ascii: "}"))
        case .session(let name, let sessionName):
            text += "{\"type\":\"luo_session\",\"name\":".utf8
            text += JSONValue.string(name).compactBytes()
            text += ",\"sessionName\":".utf8
            text += JSONValue.string(sessionName).compactBytes()
            text.append(UInt8(ascii: "}"))
        }
    }

    // MARK: - Reading

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooLarge(Int)
        case notJSON
        case notAnObject
        case missingVersion
        case unsupportedVersion(UInt64)

        public var description: String {
            switch self {
            case .tooLarge(let size): "mapping of \(size) bytes is larger than \(LiveUpdateMapping.maximumSize)"
            case .notJSON: "mapping is not valid JSON"
            case .notAnObject: "mapping is not a JSON object"
            case .missingVersion: "mapping has no valid 'version'"
            case .unsupportedVersion(let version): "mapping has unsupported version \(version) (this Ferry reads 1)"
            }
        }
    }

    /// What was read, and every problem met on the way (each names the unit and entry).
    public struct Reading: Sendable {
        public var mapping: LiveUpdateMapping
        public var problems: [String]
    }

    /// Reads systemd's v1 format and its first merged format (a bare `{unit: [entries]}` object).
    public static func decode(_ bytes: [UInt8], isValidUnit: (String) -> Bool) -> Result<Reading, Failure> {
        guard bytes.count <= maximumSize else { return .failure(.tooLarge(bytes.count)) }
        // Ferry pads its fixed-size mapping memfd with spaces: leave them out of the parse.
        var end = bytes.count
        while end > 0, [0x20, 0x0A, 0x0D, 0x09, 0x00].contains(bytes[end - 1]) { end -= 1 }
        // (A mapping written at its real size has nothing to leave out: no copy then.)
        let bytes = end == bytes.count ? bytes : Array(bytes[0..<end])
        if let mapping = quickRead(bytes, isValidUnit: isValidUnit) { return .success(Reading(mapping: mapping, problems: [])) }
        return tolerantDecode(bytes, isValidUnit: isValidUnit)
    }

    /// Reads any mapping the format allows, reporting each bad part (`decode` without its quick path).
    static func tolerantDecode(_ bytes: [UInt8], isValidUnit: (String) -> Bool) -> Result<Reading, Failure> {
        guard let (root, rootKeys, unitKeys) = JSONValue.parse(bytes, keyOrderOf: "units") else { return .failure(.notJSON) }
        guard let object = root.object else { return .failure(.notAnObject) }
        var problems: [String] = []
        var mapping = LiveUpdateMapping()
        let unitsObject: [String: JSONValue]
        var order: [String]
        if let version = object["version"] {
            guard let number = unsigned(version) else { return .failure(.missingVersion) }
            guard number <= Self.version else { return .failure(.unsupportedVersion(number)) }
            mapping.state = object["state"]?.object ?? [:]
            if let state = object["state"], state != .null, state.object == nil { problems.append("'state' is not an object, ignored") }
            guard let units = object["units"] else { return .success(Reading(mapping: mapping, problems: problems)) }
            guard let table = units.object else {
                problems.append("'units' is not an object, nothing restored")
                return .success(Reading(mapping: mapping, problems: problems))
            }
            unitsObject = table
            order = unitKeys ?? table.keys.sorted()
        } else {
            // The first merged format: the root is the units map, each value the entry array.
            unitsObject = object.mapValues { .object(["fdstore": $0]) }
            order = rootKeys ?? object.keys.sorted()
        }
        order = order.filter { unitsObject[$0] != nil }
        // A unit listed twice is read once, with the entries of its last listing (the JSON
        // parser keeps an object's last value for a repeated key): named, not read twice.
        var listed: Set<String> = []
        order = order.filter { unit in
            guard listed.insert(unit).inserted else {
                problems.append("unit '\(unit.prefix(100))' listed twice; only its last entry list is read")
                return false
            }
            return true
        }
        struct Place: Hashable { var shard: String?; var token: UInt64 }
        var seenTokens: Set<Place> = []
        for unit in order {
            guard isValidUnit(unit) else {
                problems.append("unit '\(unit.prefix(100))': invalid unit name, skipped")
                continue
            }
            guard let list = unitsObject[unit]?["fdstore"]?.array else {
                problems.append("unit '\(unit)': 'fdstore' missing or not an array, skipped")
                continue
            }
            var entries: [Entry] = []
            for (index, item) in list.enumerated() {
                switch entry(item) {
                case .success(let entry):
                    if case .fd(let name, let token, let shard) = entry {
                        guard seenTokens.insert(Place(shard: shard, token: token)).inserted else {
                            problems.append("unit '\(unit)' fd '\(name)': token \(token) used twice, skipped")
                            continue
                        }
                    }
                    entries.append(entry)
                case .failure(let problem):
                    problems.append("unit '\(unit)' entry \(index): \(problem.text), skipped")
                }
            }
            mapping.units.append((unit, entries))
        }
        return .success(Reading(mapping: mapping, problems: problems))
    }

    struct Problem: Error { let text: String }

    private static func entry(_ item: JSONValue) -> Result<Entry, Problem> {
        guard let object = item.object else { return .failure(Problem(text: "not an object")) }
        guard let type = object["type"]?.string else { return .failure(Problem(text: "no 'type'")) }
        guard let name = object["name"]?.string else { return .failure(Problem(text: "no 'name'")) }
        switch type {
        case "fd":
            guard let raw = object["token"], raw != .null, let token = unsigned(raw) else {
                return .failure(Problem(text: "fd '\(name)' has no valid token"))
            }
            guard token != mappingToken else {
                return .failure(Problem(text: "fd '\(name)' uses token 0, which is reserved for the mapping"))
            }
            let shard = object["session"]?.string
            if let shard, shard.isEmpty { return .failure(Problem(text: "fd '\(name)' names an empty session")) }
            return .success(.fd(name: name, token: token, shard: shard))
        case "luo_session":
            guard let sessionName = object["sessionName"]?.string, !sessionName.isEmpty else {
                return .failure(Problem(text: "session '\(name)' has no 'sessionName'"))
            }
            return .success(.session(name: name, sessionName: sessionName))
        default:
            return .failure(Problem(text: "unknown type '\(type.prefix(40))'"))
        }
    }

    /// An unsigned integer from a number or a decimal string.
    static func unsigned(_ value: JSONValue) -> UInt64? {
        switch value {
        case .number(let number) where number >= 0 && number == number.rounded() && number < 1.8e19: UInt64(number)
        case .string(let text): UInt64(text)
        default: nil
        }
    }
}
