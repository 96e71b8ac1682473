/// Parsers for the value types unit files use.
enum Values {
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "yes", "y", "true", "t", "on": true
        case "0", "no", "n", "false", "f", "off": false
        default: nil
        }
    }

    /// What `infinity` parses to.
    static let infinity = Duration.seconds(Int64.max / 1_000_000_000)

    /// A time span such as `5`, `100ms`, `1min 30s`, `2h`; `infinity` gives nil-as-infinite via `.max`.
    /// Plain numbers are seconds.
    static func duration(_ text: String) -> Duration? {
        let trimmed = text.trimmingWhitespace().lowercased()
        if trimmed == "infinity" { return infinity }
        if let seconds = Double(trimmed) { return milliseconds(seconds * 1000) }
        var total: Double = 0
        var number = ""
        var unit = ""
        var parsedAny = false
        func flush() -> Bool {
            guard !number.isEmpty, let value = Double(number) else { return number.isEmpty && unit.isEmpty }
            let factor: Double
            switch unit {
            case "", "s", "sec", "second", "seconds": factor = 1
            case "ms", "msec": factor = 0.001
            case "us", "usec", "µs": factor = 0.000_001
            case "m", "min", "minute", "minutes": factor = 60
            case "h", "hr", "hour", "hours": factor = 3600
            case "d", "day", "days": factor = 86400
            default: return false
            }
            total += value * factor
            number = ""
            unit = ""
            parsedAny = true
            return true
        }
        for character in trimmed {
            if character.isNumber || character == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else if character == " " {
                continue
            } else {
                unit.append(character)
            }
        }
        guard flush(), parsedAny else { return nil }
        return milliseconds(total * 1000)
    }

    /// NaN, infinities (Double reads "inf", "nan", "1e400") and negative spans are not times; spans
    /// longer than `infinity` are `infinity`. (Converting them to Int64 used to trap.)
    private static func milliseconds(_ value: Double) -> Duration? {
        guard value.isFinite, value >= 0 else { return nil }
        guard value < Double(Int64.max / 1_000_000) else { return infinity }
        return .milliseconds(Int64(value))
    }

    /// A non-negative integer.
    static func count(_ text: String) -> Int? {
        guard let value = Int(text.trimmingWhitespace()), value >= 0 else { return nil }
        return value
    }
}
