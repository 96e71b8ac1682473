import FDStore
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Store bookkeeping for every unit: adding fds under systemd's rules, removing them, watching
/// them for POLLHUP/POLLERR, and pinning a unit at rest while its store holds something.
///
/// Each entry owns its fd and its poll watch together (FDStore.Entry), so an entry let go
/// anywhere, here or by a reconfigure or a stop, releases both.
public final class StoreKeeper {
    let loop: EventLoop
    let logger: Logger
    let states: UnitStates
    let units: UnitRegistry
    /// fds stored since start, for benchmarks and status.
    public private(set) var storedCount = 0
    /// The manager above, when it keeps copies of the stores that outlive their processes.
    public var upstream: UpstreamStore?
    /// Told of every entry as it is added (the entry keeps owning its fd): a live update's keeper
    /// takes a copy of what units store while they stop.
    public var onStored: ((FDStore.Entry, UnitName) -> Void)?

    init(loop: EventLoop, units: UnitRegistry, states: UnitStates, logger: Logger) {
        self.loop = loop
        self.units = units
        self.states = states
        self.logger = logger
    }

    /// Adds descriptors to `service`'s store under one name, in order; returns how many were stored.
    /// Every descriptor is consumed: stored, or closed with a warning naming the unit and fd name.
    ///
    /// - Parameter forwarding: push each new entry of a store that outlives its process to the
    ///   manager above (off for fds that came from there).
    /// - Parameter statuses: each descriptor's fstat, when the caller has them (same positions).
    @discardableResult
    public func store(_ descriptors: consuming OwnedFDs, in service: Service, name: String, poll: Bool,
                      origin: String, forwarding: Bool = true, statuses: [stat?] = []) -> Int {
        var stored = 0
        var remaining = descriptors
        for index in 0..<remaining.count {
            guard let fd = remaining.take(at: index) else { continue }
            if service.store.limit == 0 {
                logger.warning("\(service.name): \(origin) sent fd '\(name)' but FileDescriptorStoreMax=0; closing \(remaining.rawValues.filter { $0 >= 0 }.count + 1) fd(s)")
                return stored
            }
            do throws(SystemCallError) {
                switch try service.store.add(fd, name: name, poll: poll, status: index < statuses.count ? statuses[index] : nil) {
                case .added(let id):
                    stored += 1
                    storedCount += 1
                    guard let entry = service.store.entry(id: id) else { break }
                    if poll { watch(entry, of: service) }
                    onStored?(entry, service.name)
                    if forwarding && service.config.fdStorePreserve.outlivesProcess {
                        upstream?.forward(entry, of: service.name)
                    }
                case .duplicate:
                    logger.debug("\(service.name): fd '\(name)' is already stored, dropped")
                case .full:
                    let left = remaining.rawValues.filter { $0 >= 0 }.count
                    logger.warning("\(service.name): cannot store more fds than FileDescriptorStoreMax=\(service.store.limit), closing fd '\(name)' and \(left) more")
                    return stored
                }
            } catch {
                logger.error("\(service.name): cannot store fd '\(name)': \(error)")
            }
        }
        if stored > 0 && service.state == .dead && service.config.fdStorePreserve.outlivesProcess {
            states.set(service, .pinned)
        }
        return stored
    }

    /// Removes every entry named `name` (FDSTOREREMOVE=1); returns how many.
    public func remove(named name: String, from service: Service) -> Int {
        let count = service.store.remove(named: name).count
        unpinIfEmpty(service)
        return count
    }

    /// Removes one entry, closing it.
    public func drop(id: UInt64, from service: Service) {
        service.store.remove(id: id)
        unpinIfEmpty(service)
    }

    /// clean: empties the store of a unit at rest.
    public func clean(_ service: Service) throws(ManagerError) {
        guard service.state.isAtRest else {
            throw ManagerError(code: .unitBusy, unit: service.name.full, message: "cannot clean while \(service.state)")
        }
        service.store.removeAll()
        unpinIfEmpty(service)
    }

    /// Puts a descriptor from elsewhere (a live update, a restore) into `unit`'s store. A unit with
    /// no file becomes a pinned stub whose limit grows by one per descriptor.
    @discardableResult
    public func attach(_ fd: consuming OwnedFD, to unit: UnitName, name: String, origin: String) -> Bool {
        attach(fd, to: units.service(unit), name: name, origin: origin)
    }

    /// The same, for a unit looked up once for many descriptors (a restore): looking up a unit
    /// without a file searches the unit folders again every time.
    @discardableResult
    public func attach(_ fd: consuming OwnedFD, to service: Service, name: String, origin: String) -> Bool {
        if service.isStub { service.store.limit = service.store.count + 1 }
        var one = OwnedFDs()
        one.append(fd)
        let stored = store(one, in: service, name: name, poll: true, origin: origin)
        if stored == 0 && service.isStub { service.store.limit = service.store.count }
        if stored > 0 && service.state.isAtRest && service.config.fdStorePreserve.outlivesProcess {
            states.set(service, .pinned)
        }
        return stored > 0
    }

    /// What `ferryctl fdstore` shows.
    public func describe(_ service: Service) -> [FDInfo] {
        // The store keeps the newest first (the order LISTEN_FDS hands them out); people read
        // them in the order the service stored them.
        service.store.inStoredOrder.map { FDInfo.describe($0.descriptor, name: $0.name) }
    }

    private func watch(_ entry: FDStore.Entry, of service: Service) {
        // Regular files cannot be polled (epoll_ctl says EPERM): not even asked, one system call
        // less per memfd when thousands arrive or come back after a kexec. They simply stay.
        guard !entry.isRegularFile else { return }
        let id = entry.id
        // Anything else epoll refuses simply stays too.
        entry.pollWatch = try? loop.ownedWatch(entry.fd, for: []) { [unowned self, weak service] events in
            guard let service, events.contains(.hangUp) || events.contains(.error) else { return }
            if let removed = service.store.remove(id: id) {
                logger.debug("\(service.name): stored fd '\(removed.name)' hung up, removed")
                unpinIfEmpty(service)
            }
        }
    }

    private func unpinIfEmpty(_ service: Service) {
        if service.store.isEmpty && service.state == .pinned { states.set(service, .dead) }
    }
}
