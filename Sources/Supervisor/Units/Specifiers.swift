#if canImport(Glibc)
import Glibc
#endif

/// The common `%` specifiers of unit files.
struct Specifiers {
    let unit: UnitName

    /// Replaces `%x` specifiers; unknown ones are kept and reported.
    func expand(_ text: String, warnings: inout [String], line: Int) -> String {
        guard text.contains("%") else { return text }
        var out = ""
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else {
                out.append(character)
                continue
            }
            guard let specifier = iterator.next() else {
                warnings.append("line \(line): '%' at the end of a value")
                out.append("%")
                break
            }
            if let value = value(of: specifier) {
                out += value
            } else {
                warnings.append("line \(line): unknown specifier %\(specifier), kept as is")
                out += "%\(specifier)"
            }
        }
        return out
    }

    private func value(of specifier: Character) -> String? {
        switch specifier {
        case "%": "%"
        case "n": unit.full
        case "N": unit.stem
        case "p": unit.prefix
        case "P": UnitEscape.unescape(unit.prefix)
        case "i": unit.instance ?? ""
        case "I": UnitEscape.unescape(unit.instance ?? "")
        case "j": String(unit.prefix.split(separator: "-").last ?? Substring(unit.prefix))
        case "f": "/" + UnitEscape.unescape(unit.instance ?? unit.prefix)
        case "t": "/run"
        case "S": "/var/lib"
        case "C": "/var/cache"
        case "L": "/var/log"
        case "E": "/etc"
        case "T": "/tmp"
        case "V": "/var/tmp"
        case "h": "/root"
        case "u": "root"
        case "U": "0"
        case "H": Self.hostname()
        default: nil
        }
    }

    private static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
