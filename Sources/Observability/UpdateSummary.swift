import LiveUpdateReports

/// The one line a live update leaves in the log for a human: what happened, how long the
/// services were away, what came back and what did not.
public enum UpdateSummary {
    public static func line(_ record: UpdateRecord) -> String {
        let head = "live update \(record.id)"
        switch record.outcome {
        case .refused:
            return "\(head) refused, nothing changed: \(record.failure ?? "no reason given")"
        case .rolledBack:
            let elapsed = record.phases.reduce(0) { $0 + $1.durationUs }
            return "\(head) rolled back after \(milliseconds(elapsed)) ms, \(record.services.count) unit(s) started again with their stores: \(record.failure ?? "no reason given")"
        case .succeeded:
            var text = "\(head) \(record.rehearsal ? "rehearsed" : "done"): kernel \(record.kernelBefore ?? "?") → \(record.kernelAfter ?? "?")"
            text += ", blackout \(record.blackoutUs.map { "\(milliseconds($0)) ms" } ?? "unknown")"
            let phases = record.phases.map { "\($0.name) \(milliseconds($0.durationUs))" }.joined(separator: ", ")
            if !phases.isEmpty { text += " (\(phases) ms)" }
            text += "; \(record.servicesBack)/\(record.services.count) service(s) back"
            text += "; \(record.carriedCount) fd(s) carried, \(record.lostCount) lost"
            let notBack = record.services.filter { !$0.back }.map(\.unit)
            if !notBack.isEmpty { text += "; not back: \(notBack.joined(separator: ", "))" }
            if let first = record.lost.first { text += "; first loss: \(first.detail)" }
            return text
        }
    }

    /// Whether the line is worth a warning rather than a notice.
    public static func isTrouble(_ record: UpdateRecord) -> Bool {
        record.outcome != .succeeded || record.lostCount > 0 || record.servicesBack < record.services.count
    }

    /// Milliseconds with one decimal.
    static func milliseconds(_ microseconds: UInt64) -> String {
        let tenths = (microseconds + 50) / 100
        return "\(tenths / 10).\(tenths % 10)"
    }
}
