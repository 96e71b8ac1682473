import FerrySystem
import LiveUpdateReports
import Supervisor

/// The units started after a restore, each with when it began starting and when it was ready (or
/// failed): the right end of its bar in the update's timeline, and its own blackout. Units start
/// as jobs in dependency order, so a unit's start is the moment it is seen activating.
final class RestartedUnits {
    private let origin: UInt64
    private(set) var services: [RestoreReport.ServiceStart] = []

    /// `origin`: the moment the units are asked to start (monotonic µs); offsets count from it.
    init(origin: UInt64) { self.origin = origin }

    /// A unit about to be started.
    func expect(_ name: UnitName) {
        services.append(.init(unit: name.full))
    }

    /// Its start job failed; true when that changed what is recorded.
    func failedToStart(_ name: UnitName) -> Bool {
        guard let index = services.firstIndex(where: { $0.unit == name.full }), services[index].failed != true else { return false }
        services[index].failed = true
        return true
    }

    /// A state change of any unit; true when it changed what is recorded (started, ready, failed).
    func note(_ service: Service) -> Bool {
        guard let index = services.firstIndex(where: { $0.unit == service.name.full }),
            services[index].readyUs == nil, services[index].failed != true
        else { return false }
        let now = MonotonicClock.microseconds() - origin
        let state = service.state
        let seenStarting = services[index].startedUs != nil
        if !seenStarting {
            guard state.active == .activating || state.active == .active else { return false }
            services[index].startedUs = now
        }
        // Ready: running or exited (notify units only once READY=1 arrived), or a oneshot done.
        if state.active == .active || state == .pinned || (seenStarting && state == .dead && service.result == "success") {
            services[index].readyUs = now
        } else if state.active == .failed || state.sub == .autoRestart {
            services[index].failed = true
        }
        return true
    }
}
