import LiveUpdateReports
import Testing

@Suite struct RFC3339Tests {
    @Test(arguments: [
        (UInt64(0), "1970-01-01T00:00:00Z"),
        (UInt64(951_782_400) * 1_000_000, "2000-02-29T00:00:00Z"),
        (UInt64(1_772_366_405) * 1_000_000 + 999_999, "2026-03-01T12:00:05Z"),
        (UInt64(4_107_542_399) * 1_000_000, "2100-02-28T23:59:59Z"),
    ])
    func datesInUTC(microseconds: UInt64, expected: String) {
        #expect(UpdateRecord.rfc3339(microseconds: microseconds) == expected)
    }
}
