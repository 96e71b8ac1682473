import FDStore
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a re-executed ferryd needs to pick every unit up where it was: states, processes and
/// the numbers of the store descriptors, which stay open across the exec.
public struct UnitSnapshot: Codable, Sendable, Equatable {
    public struct StoredEntry: Codable, Sendable, Equatable {
        public var name: String
        public var fd: Int32
        public var poll: Bool
        /// Its index in the manager above's store, when it was pushed there.
        public var upstreamIndex: UInt64?
    }
    public var name: String
    public var active: ServiceState.Active
    public var sub: ServiceState.Sub
    public var result: String
    public var mainPID: Int32?
    public var processGroup: Int32?
    public var status: String?
    public var restarts: Int
    public var stubLimit: Int?
    public var store: [StoredEntry]
    /// Both ends of the unit's output pipe, kept open across the exec.
    public var output: [Int32]?
}

extension Manager {
    /// Every unit, with its store oldest first (so re-adding restores newest-first order).
    /// The descriptors stay owned by the stores; the caller makes them survive exec.
    public func snapshot() -> [UnitSnapshot] {
        let pipes = output.descriptors()
        return units.services.values.sorted { $0.name < $1.name }.map { service in
            UnitSnapshot(
                name: service.name.full, active: service.state.active, sub: service.state.sub, result: service.result,
                mainPID: service.mainPID, processGroup: service.processGroup, status: service.statusText,
                restarts: service.restarts, stubLimit: service.isStub ? service.store.limit : nil,
                store: service.store.inStoredOrder.map { .init(name: $0.name, fd: $0.fd, poll: $0.poll, upstreamIndex: $0.upstreamCopy?.index) },
                output: pipes[service.name].map { [$0.reader, $0.writer] })
        }
    }

    /// Every descriptor a snapshot refers to.
    public func storeDescriptors() -> [CInt] {
        units.services.values.flatMap { $0.store.entries.map(\.fd) } + output.descriptors().values.flatMap { [$0.reader, $0.writer] }
    }

    /// Takes units back from a snapshot; adopts the descriptors it names.
    public func restore(_ snapshots: [UnitSnapshot]) {
        for snapshot in snapshots {
            guard let name = UnitName(snapshot.name) else {
                logger.warning("re-exec state names an invalid unit '\(snapshot.name)'; closing its \(snapshot.store.count) fd(s)")
                (snapshot.store.map(\.fd) + (snapshot.output ?? [])).forEach { _ = Glibc.close($0) }
                continue
            }
            let service = units.service(name)
            if let pipe = snapshot.output, pipe.count == 2 { output.adopt(name, reader: pipe[0], writer: pipe[1]) }
            if let limit = snapshot.stubLimit, service.isStub { service.store.limit = limit }
            for entry in snapshot.store {
                var one = OwnedFDs()
                one.append(OwnedFD(adopting: entry.fd))
                let stored = stores.store(one, in: service, name: entry.name, poll: entry.poll, origin: "re-exec",
                                          forwarding: false)
                if stored > 0, let index = entry.upstreamIndex, let upstream = stores.upstream, let added = service.store.newest {
                    upstream.adopt(added, of: name, index: index)
                }
            }
            service.result = snapshot.result
            service.statusText = snapshot.status
            service.restarts = snapshot.restarts
            service.processGroup = snapshot.processGroup
            if let pid = snapshot.mainPID {
                service.mainPID = pid
                processes.byPID[pid] = service
            }
            states.set(service, ServiceState(snapshot.active, snapshot.sub))
            processes.resumeTimers(service)
        }
    }
}

extension ProcessLifecycle {
    /// Timers do not survive exec: a pending restart or stop timeout starts over.
    func resumeTimers(_ service: Service) {
        if service.state.sub == .autoRestart {
            armRestart(service)
        } else if service.state.active == .deactivating, service.processGroup != nil {
            service.stopRequested = true
            armStopTimeout(service)
        }
    }
}
