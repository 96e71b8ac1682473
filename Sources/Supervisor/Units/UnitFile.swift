/// A unit file in systemd's syntax, parsed but not yet interpreted: sections of assignments.
///
/// Comments start with `#` or `;`, a trailing backslash continues a line, whitespace around `=`
/// is dropped. Lines that are not assignments or section headers are reported, not fatal.
public struct UnitFile: Sendable, Equatable {
    public struct Assignment: Sendable, Equatable {
        public var key: String
        public var value: String
        public var line: Int
    }

    public var sections: [String: [Assignment]] = [:]
    /// Problems found, each naming the line.
    public var warnings: [String] = []

    public init() {}

    /// Every value of `key` in `section`, in file order.
    public func values(_ section: String, _ key: String) -> [Assignment] {
        (sections[section] ?? []).filter { $0.key == key }
    }

    /// The last value of `key` in `section`, as systemd lets later assignments win.
    public func value(_ section: String, _ key: String) -> Assignment? { values(section, key).last }

    public static func parse(_ text: String) -> UnitFile {
        var file = UnitFile()
        var section: String?
        var pending = ""
        var pendingLine = 0
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            let line = raw.trimmingWhitespace()
            if pending.isEmpty && (line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";")) { continue }
            if !pending.isEmpty && (line.hasPrefix("#") || line.hasPrefix(";")) { continue }
            if line.hasSuffix("\\") {
                if pending.isEmpty { pendingLine = number }
                pending += String(line.dropLast()) + " "
                continue
            }
            let logical = pending.isEmpty ? line : pending + line
            let logicalLine = pending.isEmpty ? number : pendingLine
            pending = ""
            file.take(logical, line: logicalLine, section: &section)
        }
        if !pending.isEmpty { file.take(pending.trimmingWhitespace(), line: pendingLine, section: &section) }
        return file
    }

    private mutating func take(_ line: String, line number: Int, section: inout String?) {
        if line.isEmpty { return }
        if line.hasPrefix("[") {
            guard line.hasSuffix("]"), line.count > 2 else {
                warnings.append("line \(number): malformed section header '\(line)'")
                section = nil
                return
            }
            let name = String(line.dropFirst().dropLast())
            section = name
            if sections[name] == nil { sections[name] = [] }
            return
        }
        guard let equals = line.firstIndex(of: "=") else {
            warnings.append("line \(number): not an assignment, ignored: '\(line)'")
            return
        }
        guard let current = section else {
            warnings.append("line \(number): assignment outside any section, ignored")
            return
        }
        let key = String(line[..<equals]).trimmingWhitespace()
        let value = String(line[line.index(after: equals)...]).trimmingWhitespace()
        guard !key.isEmpty else {
            warnings.append("line \(number): assignment without a key, ignored")
            return
        }
        sections[current, default: []].append(Assignment(key: key, value: value, line: number))
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
