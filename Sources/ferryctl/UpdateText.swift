import LiveUpdateReports

/// History records as text for people: one row per update, or one update in detail.
enum UpdateText {
    static func table(_ records: [UpdateRecord]) -> String {
        let rows = records.map { record in
            [record.id, record.startedAt, record.outcome.rawValue + (record.rehearsal ? " (rehearsal)" : ""),
             "\(record.kernelBefore ?? "?") → \(record.kernelAfter ?? "-")",
             record.blackoutUs.map { String(format3: Double($0) / 1000) } ?? "-",
             record.outcome == .succeeded ? "\(record.servicesBack)/\(record.services.count)" : "-",
             "\(record.carriedCount)", "\(record.lostCount)"]
        }
        return ferryctl.table(["ID", "BEGAN", "RESULT", "KERNEL", "BLACKOUT MS", "BACK", "CARRIED", "LOST"], rows)
    }

    static func details(_ record: UpdateRecord) -> String {
        var text = "live update \(record.id): \(record.outcome.rawValue)\(record.rehearsal ? " (rehearsal)" : "")"
        text += ", began \(record.startedAt), kernel \(record.kernelBefore ?? "?") → \(record.kernelAfter ?? "-")"
        text += ", kexec count \(record.kexecCount)\(record.settled ? "" : " (services still starting)")\n"
        if let failure = record.failure { text += "failure: \(failure)\n" }
        var timings = record.phases.map { [$0.name, String(format3: Double($0.durationUs) / 1000)] }
        if let blackout = record.blackoutUs { timings.append(["blackout (stop → first ready)", String(format3: Double(blackout) / 1000)]) }
        text += ferryctl.table(["PHASE", "MS"], timings)
        if !record.services.isEmpty {
            let rows = record.services.map { service in
                [service.unit, service.stoppedUs.map { ms($0) } ?? "-", service.startedUs.map { ms($0) } ?? "-",
                 service.readyUs.map { ms($0) } ?? (service.failed ? "failed" : "-")]
            }
            text += "\n\n" + ferryctl.table(["SERVICE", "DOWN AT MS", "STARTED AT MS", "READY AT MS (BLACKOUT)"], rows)
        }
        text += "\n\ncarried \(record.carriedCount) fd(s)"
        for unit in record.carried {
            text += "\n  \(unit.unit): \(unit.fds) fd(s)" + (unit.sessions.isEmpty ? "" : ", sessions \(unit.sessions.joined(separator: ", "))")
        }
        text += "\nlost \(record.lostCount) fd(s)"
        for loss in record.lost { text += "\n  \(loss.reason.rawValue): \(loss.detail)" }
        for left in record.notCarried { text += "\n  not meant to cross: \(left.detail)" }
        for problem in record.problems where !record.lost.contains(where: { $0.detail == problem }) {
            text += "\n  problem: \(problem)"
        }
        return text
    }

    private static func ms(_ microseconds: UInt64) -> String { String(format3: Double(microseconds) / 1000) }
}
