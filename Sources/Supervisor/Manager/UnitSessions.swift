import FDStore
import FerrySystem
import LiveUpdate
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `LUOSession=`: sessions ferryd creates for a unit (which may run unprivileged and so cannot open
/// /dev/liveupdate) and hands to it in its fd store, each under its configured name.
///
/// Before the main process starts, every listed NAME without an outgoing session of this boot
/// in the store gets one, created under the kernel name `SessionNames.unitSession` derives from
/// the unit's cgroup path and NAME. After a kexec the store holds the incoming session (restored
/// from the mapping) and, once the unit starts, a fresh outgoing one, both under NAME: the
/// service tells them apart by direction (RETRIEVE_FD works only on the incoming one) and should
/// remove the incoming one (FDSTOREREMOVE) when done with it.
///
/// A session fd a unit pushes itself (FDSTORE=1) is refused with EACCES unless it is one of
/// these (`Manager.refusesSession`).
public final class UnitSessions {
    let manager: Manager
    let backend: any LiveUpdateBackend
    let logger: Logger
    /// Kernel names of outgoing sessions created in this boot by this process.
    private var created: Set<String> = []

    public init(manager: Manager, backend: any LiveUpdateBackend, logger: Logger) {
        self.manager = manager
        self.backend = backend
        self.logger = logger
        manager.processes.beforeMainStart = { [unowned self] service in provide(for: service) }
        manager.sessionNamer = { [unowned manager] service, name in
            SessionNames.unitSession(cgroupPath: Self.cgroupPath(service.name, manager.processes.controlGroups), name: name)
        }
    }

    /// The unit's cgroup as /proc/PID/cgroup would show it: ferryd's cgroup for it, or `/UNIT`
    /// where ferryd tracks by process group.
    static func cgroupPath(_ unit: UnitName, _ groups: ControlGroups?) -> String {
        groups.map { "\($0.rootInHierarchy)/\(unit.full)" } ?? "/\(unit.full)"
    }

    /// Creates the unit's missing sessions and stores them; a failure is logged (unit, session,
    /// errno) and the unit starts without that session.
    func provide(for service: Service) {
        for name in service.config.luoSessions {
            let kernelName = manager.expectedSessionName(of: service, name)
            if hasOutgoing(service, name: name, kernelName: kernelName) { continue }
            do throws(LiveUpdateError) {
                let session = try LiveUpdateDevice.open(backend).createSession(named: kernelName)
                created.insert(kernelName)
                if service.store.count >= service.store.limit { service.store.limit = service.store.count + 1 }
                if manager.stores.attach(session.releaseDescriptor(), to: service.name, name: name, origin: "LUOSession=") {
                    logger.info("\(service.name): handed out LUO session '\(name)' (kernel name '\(kernelName)')")
                } else {
                    logger.error("\(service.name): LUO session '\(name)' (kernel name '\(kernelName)') could not be stored; the unit starts without it")
                }
            } catch {
                if error.errno == .fileExists, service.store.entries.contains(where: { SessionIdentity.of($0.descriptor)?.name == kernelName }) {
                    continue  // made by a ferryd before a re-exec, still in the store
                }
                logger.error("\(service.name): cannot create LUO session '\(name)' (kernel name '\(kernelName)'): \(error); the unit starts without it")
            }
        }
    }

    private func hasOutgoing(_ service: Service, name: String, kernelName: String) -> Bool {
        guard created.contains(kernelName) else { return false }
        return service.store.entries.contains { $0.name == name && SessionIdentity.of($0.descriptor)?.name == kernelName }
    }
}

extension Manager {
    /// The kernel name `LUOSession=name` has for `service` (nil namer: no broker wired, the
    /// cgroup-less form).
    public func expectedSessionName(of service: Service, _ name: String) -> String {
        sessionNamer?(service, name) ?? SessionNames.unitSession(cgroupPath: "/\(service.name.full)", name: name)
    }

    /// Why a session fd pushed by `service` under `fdName` must be refused (EACCES), or nil. A
    /// unit with `LUOSession=` may store only the sessions ferryd made for it; no unit may store
    /// a brokered session (the broker carries those for their owners), except a nested ferryd
    /// pushing its broker's sessions up as `ferry-broker-<kernel name>`.
    func refusesSession(_ fd: FileDescriptor, status: stat?, pushedBy service: Service, as fdName: String) -> String? {
        guard let identity = status.map({ SessionIdentity.of(fd, status: $0) }) ?? SessionIdentity.of(fd) else { return nil }
        let kernelName = identity.name ?? "?"
        // A nested ferryd hands its broker's sessions up for a kexec this manager carries.
        if kernelName.hasPrefix(SessionNames.brokeredPrefix) && fdName != UpstreamStore.brokerSessionPrefix + kernelName {
            return "LUO session '\(kernelName)' pushed as fd '\(fdName)' is a brokered session; the broker carries it for its owner"
        }
        guard !service.config.luoSessions.isEmpty else { return nil }
        guard service.config.luoSessions.contains(fdName) else {
            return "LUO session '\(kernelName)' pushed as fd '\(fdName)': LUOSession= lists no '\(fdName)'"
        }
        let expected = expectedSessionName(of: service, fdName)
        guard kernelName == expected else {
            return "LUO session '\(kernelName)' pushed as fd '\(fdName)' is not the one ferryd created for it ('\(expected)')"
        }
        return nil
    }
}
