/// A unit's name: `prefix.service` or, for templates, `prefix@instance.service`.
public struct UnitName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let full: String

    /// Accepts names of the form `[A-Za-z0-9:_.\-@]+.service`, at most 255 bytes, with at most one `@`.
    public init?(_ full: String) {
        guard full.utf8.count <= 255, full.hasSuffix(".service"), full.count > ".service".count else { return nil }
        let allowed = full.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                || [UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "@"),
                    UInt8(ascii: "\\")].contains($0)
        }
        guard allowed, full.filter({ $0 == "@" }).count <= 1, !full.hasPrefix("@") else { return nil }
        self.full = full
    }

    public var description: String { full }
    public static func < (a: UnitName, b: UnitName) -> Bool { a.full < b.full }

    /// Without the `.service` suffix.
    public var stem: String { String(full.dropLast(".service".count)) }
    /// Before the `@`, or the stem.
    public var prefix: String { stem.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? stem }
    /// After the `@` (empty for a template itself), nil for plain units.
    public var instance: String? {
        guard let at = stem.firstIndex(of: "@") else { return nil }
        return String(stem[stem.index(after: at)...])
    }
    /// `prefix@.service` for an instance.
    public var template: UnitName? {
        guard let instance, !instance.isEmpty else { return nil }
        return UnitName(prefix + "@.service")
    }
}

/// systemd's `\xNN` unescaping of instance names (`%I`).
enum UnitEscape {
    static func unescape(_ text: String) -> String {
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "\\"), index + 3 < source.count, source[index + 1] == UInt8(ascii: "x"),
                let value = UInt8(String(decoding: source[(index + 2)...(index + 3)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 4
            } else if source[index] == UInt8(ascii: "-") {
                bytes.append(UInt8(ascii: "/"))
                index += 1
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A name a dependency may use: a service ferryd runs, or a target (a name that groups units
/// through its `.wants/` and `.requires/` folders, reached once they are started).
public enum UnitReference {
    public static func isValid(_ name: String) -> Bool {
        if name.hasSuffix(".target") {
            return UnitName(String(name.dropLast(".target".count)) + ".service") != nil
        }
        return UnitName(name) != nil
    }
}
