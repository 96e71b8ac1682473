import FDStore
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor: every service, its processes, its store, and the notify socket.
///
/// Confined to the event-loop thread. Everything it learns (a child exited, a datagram arrived,
/// a timer fired) comes through the loop; observers hear of every state change.
public final class Manager {
    public let loop: EventLoop
    public private(set) var loader: UnitLoader
    public let logger: Logger
    public let notifySocketPath: String
    let notifySocket: OwnedFD
    public internal(set) var services: [UnitName: Service] = [:]
    var byPID: [pid_t: Service] = [:]
    /// Store descriptors watched for POLLHUP/POLLERR: fd → (service, entry id).
    var storeWatches: [CInt: (Service, UInt64)] = [:]
    /// Kexecs this system went through (carried in the live-update mapping).
    public var kexecCount: UInt32 = 0
    /// cgroup v2 tracking, when ferryd can create cgroups (process groups otherwise).
    public var controlGroups: ControlGroups?
    /// Added to every service's environment (e.g. FERRY_LIVEUPDATE_EMULATOR during a rehearsal).
    public var extraEnvironment: [String] = []
    /// Called after every state change of a service.
    public var stateObservers: [(Service) -> Void] = []
    /// Statistics for benchmarks and status: datagrams handled, fds stored.
    public internal(set) var notifyMessages = 0
    public internal(set) var storedDescriptors = 0

    public init(loop: EventLoop, loader: UnitLoader, notifySocketPath: String, logger: Logger,
                adoptingNotifySocket adopted: consuming OwnedFD? = nil) throws(SystemCallError) {
        self.loop = loop
        self.loader = loader
        self.logger = logger
        self.notifySocketPath = notifySocketPath
        if let socket = adopted.take() {
            self.notifySocket = socket
        } else {
            let socket = try UnixSocket.listen(path: notifySocketPath, kind: .datagram)
            try UnixSocket.enablePassCredentials(socket.borrowed)
            var size: CInt = 8 << 20
            _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
            self.notifySocket = socket
        }
        try loop.watch(notifySocket.rawValue, for: .readable) { [unowned self] _ in receiveNotifications() }
    }

    /// The notify socket's descriptor (kept open across re-exec).
    public var notifySocketFD: CInt { notifySocket.rawValue }

    // MARK: - Units

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
        if let existing = services[name] {
            if existing.isStub, let loaded = loader.load(name) { adoptFile(existing, loaded) }
            return existing
        }
        guard loader.load(name) != nil else { return nil }
        return service(name)
    }

    /// daemon-reload: re-reads every unit file; running services, stores and sockets stay.
    public func reloadUnits(directories: [String]? = nil) {
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
        let dropped = service.reconfigure(loaded)
        for entry in dropped {
            logger.info("\(service.name): dropped stored fd '\(entry.name)': FileDescriptorStoreMax=\(service.config.fdStoreMax)")
        }
        release(dropped)
        if wasStub && service.store.isEmpty && service.state == .pinned { setState(service, .dead) }
    }

    func setState(_ service: Service, _ state: ServiceState) {
        guard service.state != state else { return }
        logger.debug("\(service.name): \(service.state) → \(state)")
        service.state = state
        for observer in stateObservers { observer(service) }
    }
}
