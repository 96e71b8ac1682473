import FerrySystem
import FDStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Unit loading: which units exist, from which files, and daemon-reload.
///
/// A unit without a file exists as a `not-found` stub while it holds restored fds.
public final class UnitRegistry {
    public private(set) var loader: UnitLoader
    public internal(set) var services: [UnitName: Service] = [:]
    let logger: Logger
    let states: UnitStates

    init(loader: UnitLoader, states: UnitStates, logger: Logger) {
        var loader = loader
        loader.reportRejected = { [logger] problem in logger.warning("unit file \(problem)") }
        self.loader = loader
        self.states = states
        self.logger = logger
    }

    /// Loads every unit file; existing services keep their processes and stores.
    /// A name whose file cannot be read (not a regular file, too large) makes no unit.
    public func loadAll() {
        for name in loader.allNames() where services[name] == nil {
            if let loaded = loader.load(name) { register(name, loaded) }
        }
    }

    /// The service `name`, loaded now if needed; a unit without a file becomes a `not-found` stub.
    public func service(_ name: UnitName) -> Service {
        if let existing = services[name] {
            if existing.isStub, let loaded = loader.load(name) { adoptFile(existing, loaded) }
            return existing
        }
        return register(name, loader.load(name))
    }

    @discardableResult
    private func register(_ name: UnitName, _ loaded: UnitLoader.Loaded?) -> Service {
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

    /// A unit to look at: the known one, or one made from its file without registering it (reads
    /// must not create state: 20,000 GetUnit calls on instance names must not make 20,000 units).
    public func peek(_ name: UnitName) -> Service? {
        if let existing = services[name] { return existing }
        return loader.load(name).map { Service(name: name, loaded: $0) }
    }

    /// daemon-reload: re-reads every unit file; running services, stores and sockets stay.
    public func reload(directories: [String]? = nil) {
        if let directories {
            var fresh = UnitLoader(directories: directories)
            fresh.reportRejected = loader.reportRejected
            loader = fresh
        }
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
        // A set: a file with 100,000 warnings must not cost a quadratic search.
        let known = Set(service.warnings)
        for warning in loaded.warnings where !known.contains(warning) {
            logger.warning("\(service.name): \(warning)")
        }
        for entry in service.reconfigure(loaded) {
            logger.info("\(service.name): dropped stored fd '\(entry.name)': FileDescriptorStoreMax=\(service.config.fdStoreMax)")
        }
        if wasStub && service.store.isEmpty && service.state == .pinned { states.set(service, .dead) }
    }

    // MARK: - enable, disable

    /// Links `name` into the `.wants/` (WantedBy=) and `.requires/` (RequiredBy=) folders of the
    /// targets its [Install] section names, in the first unit folder; returns the links made.
    public func enable(_ name: UnitName) throws(ManagerError) -> [String] {
        guard let loaded = loader.load(name) else {
            throw ManagerError(code: .noSuchUnit, unit: name.full, message: "no unit file")
        }
        let targets = loaded.config.wantedBy.map { ($0, "wants") } + loaded.config.requiredBy.map { ($0, "requires") }
        guard !targets.isEmpty else {
            throw ManagerError(code: .notLoaded, unit: name.full, message: "its unit file has no [Install] section with WantedBy= or RequiredBy=; nothing to enable")
        }
        guard let folder = loader.directories.first else { return [] }
        var made: [String] = []
        for (target, kind) in targets {
            let directory = "\(folder)/\(target).\(kind)"
            mkdir(directory, 0o755)
            let link = "\(directory)/\(name.full)"
            unlink(link)
            guard symlink(loaded.path, link) == 0 else {
                throw ManagerError(code: .startFailed, unit: name.full, message: "cannot link \(link): errno \(errno)")
            }
            made.append(link)
        }
        logger.info("\(name): enabled (\(made.joined(separator: ", ")))")
        return made
    }

    /// Removes every link to `name` from the `.wants/` and `.requires/` folders; returns them.
    public func disable(_ name: UnitName) -> [String] {
        var removed: [String] = []
        for directory in loader.directories {
            guard let folder = opendir(directory) else { continue }
            defer { closedir(folder) }
            while let entry = readdir(folder) {
                let sub = directoryEntryName(entry)
                guard sub.hasSuffix(".wants") || sub.hasSuffix(".requires") else { continue }
                let link = "\(directory)/\(sub)/\(name.full)"
                if unlink(link) == 0 { removed.append(link) }
            }
        }
        if !removed.isEmpty { logger.info("\(name): disabled (\(removed.joined(separator: ", ")))") }
        return removed
    }

    /// Whether some `.wants/` or `.requires/` folder links `name`.
    public func isEnabled(_ name: UnitName) -> Bool {
        for directory in loader.directories {
            guard let folder = opendir(directory) else { continue }
            defer { closedir(folder) }
            while let entry = readdir(folder) {
                let sub = directoryEntryName(entry)
                if (sub.hasSuffix(".wants") || sub.hasSuffix(".requires")) && access("\(directory)/\(sub)/\(name.full)", F_OK) == 0 {
                    return true
                }
            }
        }
        return false
    }
}
