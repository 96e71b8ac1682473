import Logging

/// The one place a unit's state changes, and everyone who hears of it.
///
/// Confined to the event-loop thread, as every part of the manager is.
public final class UnitStates {
    let logger: Logger
    private var observers: [(Service) -> Void] = []

    init(logger: Logger) { self.logger = logger }

    /// Calls `observer` after every state change of any unit, for the life of the manager.
    public func observe(_ observer: @escaping (Service) -> Void) { observers.append(observer) }

    func set(_ service: Service, _ state: ServiceState) {
        guard service.state != state else { return }
        logger.debug("\(service.name): \(service.state) → \(state)")
        service.state = state
        for observer in observers { observer(service) }
    }
}
