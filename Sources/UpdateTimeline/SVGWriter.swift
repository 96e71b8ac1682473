/// Writes SVG elements with every attribute and text escaped, so a unit name or a failure text
/// can never break the document.
struct SVGWriter {
    private var out: String

    init(width: Double, height: Double) {
        out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(Self.number(width))" height="\(Self.number(height))" \
            viewBox="0 0 \(Self.number(width)) \(Self.number(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>

            """
    }

    mutating func finish() -> String {
        out += "</svg>\n"
        return out
    }

    mutating func open(_ name: String, _ attributes: [String: String]) {
        out += "<\(name)\(Self.attributes(attributes.sorted { $0.key < $1.key }))>\n"
    }

    mutating func close(_ name: String) { out += "</\(name)>\n" }

    mutating func element(_ name: String, text: String) {
        out += "<\(name)>\(Self.escape(text))</\(name)>\n"
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String) {
        out += "<rect\(Self.attributes([("x", Self.number(x)), ("y", Self.number(y)), ("width", Self.number(width)), ("height", Self.number(height)), ("fill", fill)]))/>\n"
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String) {
        out += "<line\(Self.attributes([("x1", Self.number(x1)), ("y1", Self.number(y1)), ("x2", Self.number(x2)), ("y2", Self.number(y2)), ("stroke", stroke)]))/>\n"
    }

    mutating func text(_ content: String, x: Double, y: Double, size: Int, weight: String = "normal",
                       anchor: String = "start", fill: String = "#000000") {
        let attributes = [("x", Self.number(x)), ("y", Self.number(y)), ("font-size", "\(size)"),
                          ("font-weight", weight), ("text-anchor", anchor), ("fill", fill)]
        out += "<text\(Self.attributes(attributes))>\(Self.escape(content))</text>\n"
    }

    private static func attributes(_ pairs: [(String, String)]) -> String {
        pairs.map { " \($0.0)=\"\(escape($0.1))\"" }.joined()
    }

    /// XML's five, and control characters (not allowed in XML 1.0) dropped.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            case "\t", "\n", "\r": escaped.unicodeScalars.append(scalar)
            default: if scalar.value >= 0x20 { escaped.unicodeScalars.append(scalar) }
            }
        }
        return escaped
    }

    /// One decimal is finer than a pixel.
    static func number(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(abs(tenths % 10))"
    }
}
