extension UpdateRecord {
    /// RFC 3339 in UTC with whole seconds (`2026-03-01T12:00:05Z`), computed from the day count
    /// (the proleptic Gregorian calendar), so this module needs neither libc's time zone code nor
    /// Foundation.
    public static func rfc3339(microseconds: UInt64) -> String {
        let seconds = Int64(microseconds / 1_000_000)
        let days = seconds / 86_400
        let inDay = seconds % 86_400
        let (year, month, day) = civil(daysSinceEpoch: days)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(inDay / 3600)):\(two(inDay / 60 % 60)):\(two(inDay % 60))Z"
    }

    /// Year, month, day of a day count from 1970-01-01 (eras of 400 years, March-based years).
    static func civil(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let shifted = daysSinceEpoch + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
