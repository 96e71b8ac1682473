import FerryJSON

/// The nested-manager mapping (reference-systemd.md §2.3): which of the fds a manager pushed to
/// the manager above it belongs to which unit, under which name. The fds travel separately,
/// each as `sub-fdstore-<index>`; this document travels as `systemd-fdstore-mapping`:
///
///     {"a.service":[{"name":"state","index":1},{"name":"state","index":2}],"b.service":[...]}
///
/// Reading is tolerant: every bad unit or entry is reported and skipped, the rest is kept.
public struct UpstreamMapping: Sendable, Equatable {
    public static let mappingName = "systemd-fdstore-mapping"
    public static let entryPrefix = "sub-fdstore-"
    /// Larger documents are refused unread.
    public static let maximumSize = 16 << 20

    public struct Entry: Sendable, Equatable {
        public var name: String
        public var index: UInt64
        public init(name: String, index: UInt64) {
            self.name = name
            self.index = index
        }
    }

    /// Units in document order, each with its entries in store order.
    public var units: [(unit: String, entries: [Entry])]

    public init(units: [(unit: String, entries: [Entry])] = []) { self.units = units }

    public static func == (a: UpstreamMapping, b: UpstreamMapping) -> Bool {
        a.units.map(\.unit) == b.units.map(\.unit) && a.units.map(\.entries) == b.units.map(\.entries)
    }

    /// The FDNAME an entry's fd travels under.
    public static func fdName(index: UInt64) -> String { "\(entryPrefix)\(index)" }

    /// The index in `sub-fdstore-<index>`, nil for any other name.
    public static func index(fromName name: String) -> UInt64? {
        guard name.hasPrefix(entryPrefix), let index = UInt64(name.dropFirst(entryPrefix.count)), index > 0 else { return nil }
        return index
    }

    public func encoded() -> [UInt8] {
        let units = units.filter { !$0.entries.isEmpty }.map { unit in
            JSONValue.string(unit.unit).encodedString() + ":["
                + unit.entries.map { "{\"name\":\(JSONValue.string($0.name).encodedString()),\"index\":\($0.index)}" }
                    .joined(separator: ",") + "]"
        }
        return Array(("{" + units.joined(separator: ",") + "}").utf8)
    }

    /// What was read, and every problem met on the way (each names the unit and entry).
    public struct Reading: Sendable {
        public var mapping: UpstreamMapping
        public var problems: [String]
    }

    /// Reads the document; nil with the reason when nothing at all can be used.
    public static func decode(_ bytes: [UInt8], isValidUnit: (String) -> Bool) -> Result<Reading, MappingError> {
        guard bytes.count <= maximumSize else { return .failure(MappingError(text: "\(mappingName) of \(bytes.count) bytes is larger than \(maximumSize)")) }
        guard let (root, order, _) = JSONValue.parse(bytes, keyOrderOf: nil) else {
            return .failure(MappingError(text: "\(mappingName) is not valid JSON (truncated?)"))
        }
        guard let object = root.object, let order else { return .failure(MappingError(text: "\(mappingName) is not a JSON object")) }
        var reading = Reading(mapping: UpstreamMapping(), problems: [])
        var seen: Set<UInt64> = []
        for unit in order {
            guard isValidUnit(unit) else {
                reading.problems.append("unit '\(unit.prefix(100))': invalid unit name, skipped")
                continue
            }
            guard let list = object[unit]?.array else {
                reading.problems.append("unit '\(unit)': not an array of entries, skipped")
                continue
            }
            var entries: [Entry] = []
            for (position, item) in list.enumerated() {
                guard let name = item["name"]?.string, let number = item["index"]?.number,
                    number >= 1, number == number.rounded(), number < 1.8e19
                else {
                    reading.problems.append("unit '\(unit)' entry \(position): needs a 'name' and a non-zero 'index', skipped")
                    continue
                }
                let index = UInt64(number)
                guard seen.insert(index).inserted else {
                    reading.problems.append("unit '\(unit)' fd '\(name)': index \(index) listed twice, skipped")
                    continue
                }
                entries.append(Entry(name: name, index: index))
            }
            reading.mapping.units.append((unit, entries))
        }
        return .success(reading)
    }
}

/// Why a mapping could not be read at all.
public struct MappingError: Error, Equatable, CustomStringConvertible {
    public let text: String
    public init(text: String) { self.text = text }
    public var description: String { text }
}

/// The copy of a store entry held by the manager above this one: it lives as long as the entry,
/// and its end tells the manager above to drop the copy.
public final class UpstreamCopy {
    public let index: UInt64
    private let onEnd: (UInt64) -> Void

    public init(index: UInt64, onEnd: @escaping (UInt64) -> Void) {
        self.index = index
        self.onEnd = onEnd
    }

    deinit { onEnd(index) }
}
