import FDStore
import Logging

/// Unit loading: which units exist, from which files, and daemon-reload.
///
/// A unit without a file exists as a `not-found` stub while it holds restored fds.
public final class UnitRegistry {
    public private(set) var loader: UnitLoader
    public internal(set) var services: [UnitName: Service] = [:]
    let logger: Logger
    let states: UnitStates

    init(loader: UnitLoader, states: UnitStates, logger: Logger) {
        self.loader = loader
        self.states = states
        self.logger = logger
    }

    /// Loads every unit file; existing services keep their processes and stores.
    public func loadAll() {
        for name in loader.allNames() where services[name] == nil { _ = service(name) }
    }

    /// The service `name`, loaded now if needed; a unit without a file becomes a `not-found` stub.
    public func service(_ name: UnitName) -> Service {
        if let existing = services[name] {
            if existing.isStub, let loaded = loader.load(name) { adoptFile(existing, loaded) }
            return existing
        }
        let loaded = loader.load(name)
        let service = Service(name: name, loaded: loaded)
        for warning in service.warnings { logger.warning("\(name): \(warning)") }
        services[name] = service
        return service
    }

    /// A unit that is known (loaded, or has a file), else nil.
    public func existingService(_ name: UnitName) -> Service? {
        if services[name] != nil || loader.load(name) != nil { return service(name) }
        return nil
    }

    /// daemon-reload: re-reads every unit file; running services, stores and sockets stay.
    public func reload(directories: [String]? = nil) {
        if let directories { loader = UnitLoader(directories: directories) }
        for (name, service) in services {
            if let loaded = loader.load(name) {
                adoptFile(service, loaded)
            } else if !service.isStub {
                logger.info("\(name): unit file removed")
                service.path = nil
                if service.state.isAtRest && service.store.isEmpty { services[name] = nil }
            }
        }
        loadAll()
        logger.info("reloaded unit files: \(services.count) unit(s)")
    }

    private func adoptFile(_ service: Service, _ loaded: UnitLoader.Loaded) {
        let wasStub = service.isStub
        for warning in loaded.warnings where !service.warnings.contains(warning) {
            logger.warning("\(service.name): \(warning)")
        }
        for entry in service.reconfigure(loaded) {
            logger.info("\(service.name): dropped stored fd '\(entry.name)': FileDescriptorStoreMax=\(service.config.fdStoreMax)")
        }
        if wasStub && service.store.isEmpty && service.state == .pinned { states.set(service, .dead) }
    }
}
