import FDStore
import FerrySystem
import SystemPackage

extension Manager {
    /// Adds descriptors to `service`'s store under one name, in order; returns how many were stored.
    /// Every descriptor is consumed: stored, or closed with a warning naming the unit and fd name.
    @discardableResult
    public func storeDescriptors(_ descriptors: consuming OwnedFDs, in service: Service, name: String, poll: Bool,
                                 origin: String) -> Int {
        var stored = 0
        var remaining = descriptors
        for index in 0..<remaining.count {
            guard let fd = remaining.take(at: index) else { continue }
            if service.store.limit == 0 {
                logger.warning("\(service.name): \(origin) sent fd '\(name)' but FileDescriptorStoreMax=0; closing \(remaining.rawValues.filter { $0 >= 0 }.count + 1) fd(s)")
                return stored
            }
            do throws(SystemCallError) {
                switch try service.store.add(fd, name: name, poll: poll) {
                case .added(let id):
                    stored += 1
                    storedDescriptors += 1
                    if poll, let entry = service.store.entry(id: id) { watchEntry(entry, of: service) }
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
        if stored > 0 && service.state.isAtRest && service.config.fdStorePreserve.outlivesProcess && service.state == .dead {
            setState(service, .pinned)
        }
        return stored
    }

    /// Removes every entry named `name` (FDSTOREREMOVE=1).
    public func removeStored(named name: String, from service: Service) -> Int {
        let removed = service.store.remove(named: name)
        release(removed)
        unpinIfEmpty(service)
        return removed.count
    }

    /// Removes one entry (closing it).
    public func dropStored(id: UInt64, from service: Service) {
        if let entry = service.store.remove(id: id) { release([entry]) }
        unpinIfEmpty(service)
    }

    /// Forgets entries taken out of a store: unwatches them, then lets them close.
    func release(_ entries: [FDStore.Entry]) {
        for entry in entries where storeWatches.removeValue(forKey: entry.fd) != nil { loop.unwatch(entry.fd) }
    }

    private func watchEntry(_ entry: FDStore.Entry, of service: Service) {
        let id = entry.id
        do throws(SystemCallError) {
            try loop.watch(entry.fd, for: []) { [unowned self] events in
                guard events.contains(.hangUp) || events.contains(.error) else { return }
                if let removed = service.store.remove(id: id) {
                    logger.debug("\(service.name): stored fd '\(removed.name)' hung up, removed")
                    release([removed])
                    unpinIfEmpty(service)
                }
            }
            storeWatches[entry.fd] = (service, id)
        } catch {
            // Regular files and the like cannot be polled (EPERM); they simply stay.
        }
    }

    private func unpinIfEmpty(_ service: Service) {
        if service.store.isEmpty && service.state == .pinned { setState(service, .dead) }
    }

    /// Puts a descriptor from elsewhere (a live update, a restore) into `unit`'s store. A unit with
    /// no file becomes a pinned stub whose limit grows by one per descriptor.
    @discardableResult
    public func attachExternal(_ fd: consuming OwnedFD, to unit: UnitName, name: String, origin: String) -> Bool {
        let service = self.service(unit)
        if service.isStub { service.store.limit = service.store.count + 1 }
        var one = OwnedFDs()
        one.append(fd)
        let stored = storeDescriptors(one, in: service, name: name, poll: true, origin: origin)
        if stored == 0 && service.isStub { service.store.limit = service.store.count }
        if stored > 0 && service.state.isAtRest && service.config.fdStorePreserve.outlivesProcess {
            setState(service, .pinned)
        }
        return stored > 0
    }

    /// What `ferryctl fdstore` shows.
    public func describeStore(of service: Service) -> [FDInfo] {
        service.store.entries.map { FDInfo.describe($0.descriptor, name: $0.name) }
    }
}
