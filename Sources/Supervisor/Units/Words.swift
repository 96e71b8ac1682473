/// systemd's word splitting with quotes and C escapes (ExecStart=, Environment=).
enum Words {
    enum Failure: Error, Equatable { case unterminatedQuote, badEscape(String) }

    /// Splits `text` at unquoted whitespace; double and single quotes group words (only at a
    /// word's start, as systemd requires), backslash escapes are decoded.
    static func split(_ text: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character? = nil
        var iterator = Array(text)
        var index = 0
        func next() -> Character? {
            guard index < iterator.count else { return nil }
            defer { index += 1 }
            return iterator[index]
        }
        while let character = next() {
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" {
                    current += try escape(next, inQuote: true)
                } else {
                    current.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t", "\n":
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            case "\"", "'":
                quote = character
                inWord = true
            case "\\":
                inWord = true
                current += try escape(next, inQuote: false)
            default:
                inWord = true
                current.append(character)
            }
        }
        if quote != nil { throw .unterminatedQuote }
        if inWord { words.append(current) }
        iterator = []
        return words
    }

    private static func escape(_ next: () -> Character?, inQuote: Bool) throws(Failure) -> String {
        guard let character = next() else { throw .badEscape("\\ at the end") }
        switch character {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "a": return "\u{07}"
        case "b": return "\u{08}"
        case "f": return "\u{0C}"
        case "v": return "\u{0B}"
        case "s": return " "
        case "\\", "\"", "'", " ", ";", "$": return String(character)
        case "x":
            guard let high = next(), let low = next(), let value = UInt8(String([high, low]), radix: 16) else {
                throw .badEscape("\\x needs two hex digits")
            }
            return String(decoding: [value], as: UTF8.self)
        default:
            throw .badEscape("\\\(character)")
        }
    }
}
