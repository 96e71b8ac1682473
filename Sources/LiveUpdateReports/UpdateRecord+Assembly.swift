/// How a history record is made from the reports: on the old side for a refused or rolled-back
/// update, on the new side (after the kexec) from the restore and what the old side carried.
extension UpdateRecord {
    /// An update that never left the kernel.
    public init(failed report: LiveUpdateReport, rolledBack: Bool, kexecCount: UInt32, id fallbackID: String) {
        let started = report.startedAt ?? 0
        self.init(id: report.id ?? fallbackID, outcome: rolledBack ? .rolledBack : .refused, rehearsal: report.rehearsal,
                  startedAt: Self.rfc3339(microseconds: started), startedAtUs: started, kernelBefore: report.kernelBefore, kernelAfter: nil,
                  kexecCount: kexecCount, failure: report.failure, phases: Self.phases(report.timings),
                  blackoutUs: nil, services: [], carried: [], carriedCount: 0, lost: [], lostCount: 0,
                  notCarried: [], problems: [], settled: true)
        services = (report.stops ?? []).map { Service(unit: $0.unit, stoppedUs: $0.stoppedUs, failed: false, back: false) }
        // Rolled back, nothing crossed: every store stayed where it was. Only what was dropped
        // on the way (a session in Ferry's namespace) is lost.
        let dropped = (report.losses ?? []).filter { $0.reason == .namespaceClash }
        setLost(dropped)
    }

    /// An update whose restore ran in this boot. `update` is the old side's report, nil when the
    /// previous ferryd did not carry one (its units and timings are then unknown).
    public init(restore: RestoreReport, kernelAfter: String, id fallbackID: String) {
        let update = restore.update
        self.init(id: update?.id ?? fallbackID, outcome: .succeeded, rehearsal: update?.rehearsal ?? false,
                  startedAt: Self.rfc3339(microseconds: update?.startedAt ?? 0), startedAtUs: update?.startedAt ?? 0, kernelBefore: update?.kernelBefore,
                  kernelAfter: kernelAfter, kexecCount: restore.kexecCount, failure: nil,
                  phases: Self.phases(restore.timings), blackoutUs: restore.timings.blackout, services: [],
                  carried: Self.carried(restore.restored), carriedCount: restore.restored.count, lost: [], lostCount: 0,
                  notCarried: [], problems: Array(restore.problems.prefix(Self.listLimit)), settled: false)
        services = Self.services(stops: update?.stops ?? [], starts: restore.services ?? [],
                                 unitsStartedAt: Self.end(of: "restore", in: phases))
        let before = update?.losses ?? []
        notCarried = Array(before.filter { !$0.wasMeantToCross }.prefix(Self.listLimit))
        setLost(before.filter(\.wasMeantToCross) + (restore.losses ?? []) + Self.missing(update, restore))
        // Settled when every unit asked to start is ready or failed (one never asked, for want
        // of a unit file, is not waited for).
        settled = (restore.services ?? []).allSatisfy { $0.readyUs != nil || $0.failed == true }
    }

    private mutating func setLost(_ losses: [LiveUpdateLoss]) {
        lost = Array(losses.prefix(Self.listLimit))
        lostCount = losses.reduce(0) { $0 + $1.count }
    }

    /// The phases that have a duration, laid end to end.
    static func phases(_ timings: LiveUpdateTimings) -> [Phase] {
        let named: [(String, UInt64?)] = [("stop", timings.stop), ("serialize", timings.serialize),
                                          ("preserve", timings.preserve), ("kexec", timings.kexec),
                                          ("restore", timings.restore), ("ready", timings.ready)]
        var start: UInt64 = 0
        var phases: [Phase] = []
        for case (let name, let duration?) in named {
            phases.append(Phase(name: name, startUs: start, durationUs: duration))
            start += duration
        }
        return phases
    }

    static func end(of name: String, in phases: [Phase]) -> UInt64? {
        phases.first { $0.name == name }.map { $0.startUs + $0.durationUs }
    }

    /// Each unit that was active, with its stop and (offset to the whole update) its start and ready.
    static func services(stops: [LiveUpdateReport.ServiceStop], starts: [RestoreReport.ServiceStart],
                         unitsStartedAt: UInt64?) -> [Service] {
        var services = stops.map { Service(unit: $0.unit, stoppedUs: $0.stoppedUs, failed: false, back: false) }
        for start in starts {
            let index = services.firstIndex { $0.unit == start.unit } ?? {
                services.append(Service(unit: start.unit, failed: false, back: false))
                return services.count - 1
            }()
            let origin = unitsStartedAt ?? 0
            services[index].startedUs = start.startedUs.map { origin + $0 }
            services[index].readyUs = start.readyUs.map { origin + $0 }
            services[index].failed = start.failed ?? false
            services[index].back = start.readyUs != nil
        }
        return services
    }

    static func carried(_ items: [LiveUpdateReport.Item]) -> [Carried] {
        var byUnit: [Carried] = []
        for item in items {
            let index = byUnit.firstIndex { $0.unit == item.unit } ?? {
                byUnit.append(Carried(unit: item.unit, fds: 0, sessions: []))
                return byUnit.count - 1
            }()
            if let session = item.sessionName { byUnit[index].sessions.append(session) } else { byUnit[index].fds += 1 }
        }
        return byUnit
    }

    /// Preserved before the kexec, neither restored nor already explained after it.
    static func missing(_ update: LiveUpdateReport?, _ restore: RestoreReport) -> [LiveUpdateLoss] {
        guard let update else { return [] }
        let back = Set(restore.restored.map { "\($0.unit)\u{0}\($0.name)" })
        let explained = Set((restore.losses ?? []).map { "\($0.unit)\u{0}\($0.name ?? "")" })
        return update.preserved.filter {
            let key = "\($0.unit)\u{0}\($0.name)"
            return !back.contains(key) && !explained.contains(key)
        }.map {
            LiveUpdateLoss(unit: $0.unit, name: $0.name, reason: .notRestored,
                           detail: "unit \($0.unit) fd '\($0.name)': preserved before the kexec, not found after it")
        }
    }
}
