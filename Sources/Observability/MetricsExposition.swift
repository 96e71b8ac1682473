import LiveUpdateReports
import Prometheus

/// The Prometheus text format of a snapshot, through swift-prometheus's registry (which writes
/// the format, escapes label values and keeps HELP/TYPE consistent).
///
/// A fresh registry per rendering: the last update's per-service series must vanish when the
/// next update has other services, and a registry only ever adds series.
public enum MetricsExposition {
    public static func render(_ snapshot: MetricsSnapshot) -> String {
        let registry = PrometheusCollectorRegistry()
        counters(snapshot, registry)
        lastUpdate(snapshot.lastUpdate, registry)
        stores(snapshot, registry)
        return registry.emitToString()
    }

    private static func counters(_ snapshot: MetricsSnapshot, _ registry: PrometheusCollectorRegistry) {
        for outcome in UpdateRecord.Outcome.allCases {
            counter(registry, "ferry_live_updates_total", "Live updates asked of ferryd, by result (succeeded, rolled_back, refused).", [("result", label(outcome))], Int64(clamping: snapshot.totals.updates[outcome.rawValue] ?? 0))
        }
        counter(registry, "ferry_kexecs_total", "Kexecs this host went through with Ferry's LUO session (carried across kernels).", [], Int64(clamping: snapshot.kexecs))
        counter(registry, "ferry_live_update_fds_carried_total", "Stored fds (plain or LUO sessions) that came back after live updates.", [], Int64(clamping: snapshot.totals.fdsCarried))
        for reason in LiveUpdateLoss.Reason.allCases where reason.countsAsLost {
            counter(registry, "ferry_live_update_fds_lost_total", "Stored fds meant to cross a kexec that live updates lost, by reason.", [("reason", reason.rawValue)], Int64(clamping: snapshot.totals.fdsLost[reason.rawValue] ?? 0))
        }
    }

    private static func lastUpdate(_ record: UpdateRecord?, _ registry: PrometheusCollectorRegistry) {
        guard let record else { return }
        gauge(registry, "ferry_last_update_timestamp_seconds", "When the last live update began (Unix time).", [], Double(record.startedAtUs) / 1e6)
        for outcome in UpdateRecord.Outcome.allCases {
            gauge(registry, "ferry_last_update_result", "1 for the result of the last live update, 0 for the others.", [("result", label(outcome))], record.outcome == outcome ? 1 : 0)
        }
        for phase in record.phases {
            gauge(registry, "ferry_last_update_phase_seconds", "How long each phase of the last live update took.", [("phase", phase.name)], seconds(phase.durationUs))
        }
        if let blackout = record.blackoutUs {
            gauge(registry, "ferry_last_update_blackout_seconds", "The last live update's blackout: from the stop to the first service ready.", [], seconds(blackout))
        }
        for service in record.services {
            guard let ready = service.readyUs else { continue }
            gauge(registry, "ferry_last_update_service_blackout_seconds", "Each service's blackout in the last live update: from its stop to ready again.", [("unit", service.unit)], seconds(ready))
        }
        gauge(registry, "ferry_last_update_services_not_back", "Services active before the last live update that are not ready again.", [], Double(record.services.count - record.servicesBack))
        gauge(registry, "ferry_last_update_fds_carried", "Stored fds that came back in the last live update.", [], Double(record.carriedCount))
        var lost: [LiveUpdateLoss.Reason: Int] = [:]
        for loss in record.lost { lost[loss.reason, default: 0] += loss.count }
        for reason in LiveUpdateLoss.Reason.allCases where reason.countsAsLost {
            gauge(registry, "ferry_last_update_fds_lost", "Stored fds meant to cross the kexec that the last live update lost, by reason.", [("reason", reason.rawValue)], Double(lost[reason] ?? 0))
        }
    }

    private static func stores(_ snapshot: MetricsSnapshot, _ registry: PrometheusCollectorRegistry) {
        for (unit, count) in snapshot.storeEntries.sorted(by: { $0.key < $1.key }) {
            gauge(registry, "ferry_unit_fd_store_entries", "Entries in each unit's fd store.", [("unit", unit)], Double(count))
        }
        gauge(registry, "ferry_luo_sessions_held", "LUO sessions held in fd stores.", [], Double(snapshot.sessionsHeld))
        gauge(registry, "ferry_luo_incoming_sessions_held", "LUO sessions from the previous kernel still held in fd stores; each may be unfinished (the kernel cannot be asked).", [], Double(snapshot.incomingSessionsHeld))
    }

    private static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String,
                                _ labels: [(String, String)], _ value: Int64) {
        registry.makeCounter(descriptor: descriptor(name, help), labels: labels).increment(by: value)
    }

    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String,
                              _ labels: [(String, String)], _ value: Double) {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels).set(value)
    }

    /// The whole name is given (with its unit suffix), so the descriptor's parts stay empty.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Label values in snake case, as Prometheus users expect (`rolled_back`).
    private static func label(_ outcome: UpdateRecord.Outcome) -> String {
        outcome.rawValue.replacingHyphens()
    }

    private static func seconds(_ microseconds: UInt64) -> Double { Double(microseconds) / 1e6 }
}

extension LiveUpdateLoss.Reason {
    /// preserve_mode is the configuration's choice, not a loss.
    var countsAsLost: Bool { self != .preserveMode }
}

extension String {
    func replacingHyphens() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
