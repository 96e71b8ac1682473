import LiveUpdateReports

/// Where things go in the picture: rows, and the one time scale every bar shares.
struct TimelineLayout {
    let width = 1100.0
    let labelWidth = 260.0
    let rightMargin = 120.0
    let rowHeight = 22.0
    let barHeight = 16.0
    let top: Double
    let phaseRows: Int
    let serviceRows: Int
    /// The latest moment drawn (µs from the stop); never 0.
    let span: UInt64

    init(_ record: UpdateRecord) {
        top = record.failure == nil ? 96 : 114
        phaseRows = record.phases.count
        serviceRows = record.services.count
        let phaseEnd = record.phases.map { $0.startUs + $0.durationUs }.max() ?? 0
        let serviceEnd = record.services.map { max($0.stoppedUs ?? 0, $0.startedUs ?? 0, $0.readyUs ?? 0) }.max() ?? 0
        span = max(1, phaseEnd, serviceEnd)
    }

    var height: Double { bottom + 50 }
    var bottom: Double { serviceY(serviceRows) }

    func rowY(_ row: Int) -> Double { top + 14 + Double(row) * rowHeight }
    /// Services sit below the phases, after a gap for their heading.
    func serviceY(_ row: Int) -> Double { rowY(phaseRows) + 26 + Double(row) * rowHeight }

    func x(_ microseconds: UInt64) -> Double {
        labelWidth + Double(microseconds) / Double(span) * (width - labelWidth - rightMargin)
    }

    /// Round steps (1, 2 or 5 × 10ⁿ µs) giving at most eight ticks across the span.
    func ticks() -> [UInt64] {
        var magnitude: UInt64 = 1
        while true {
            for factor: UInt64 in [1, 2, 5] where span / (magnitude * factor) <= 8 {
                let step = magnitude * factor
                return (0...(span / step)).map { $0 * step }
            }
            magnitude *= 10
        }
    }

    /// Milliseconds with at most one decimal, for labels.
    static func milliseconds(_ microseconds: UInt64) -> String {
        let tenths = (microseconds + 50) / 100
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }
}
