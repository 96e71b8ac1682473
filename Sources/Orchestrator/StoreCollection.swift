import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import Supervisor

/// The serialize phase: which stored fds ride the update, and what is left behind and why.
struct StoreCollection {
    /// One fd to carry: a plain fd to preserve, or a service-owned session kept open by its store.
    struct Entry {
        var unit: UnitName
        var name: String
        /// Owned by the unit's store, which keeps it open until the reboot or the rollback.
        var fd: CInt
        /// Set for a LUO session: it is carried by staying open, never preserved inside another.
        var sessionName: String?
        /// The manager above holds a copy (nested managers).
        var heldAbove = false
    }

    /// X-FerryFDGroup=: plain fds preserved together, all-or-nothing, members in declared order.
    struct Group {
        var unit: UnitName
        var name: String
        var members: [Entry]
        /// "unit X-FerryFDGroup=name": how logs and losses name it.
        var label: String { "group \(name) of \(unit)" }
    }

    /// Everything not in a group: plain fds and sessions, unit by unit.
    var entries: [Entry] = []
    /// Groups in unit order, then in the order each unit declares them.
    var groups: [Group] = []
    /// Each with its reason: unit, fd name, and why.
    var skipped: [String] = []
    /// The same, one per fd, for the report's verdict.
    var lost: [Lost] = []
    /// The same again, with a reason code, for counting (metrics, history).
    var losses: [LiveUpdateLoss] = []

    /// The entries of every store that outlives its process (yes, on-success), by unit name and
    /// newest first. A stored session named like Ferry's own is dropped from its store now: held
    /// open it would make Ferry's CREATE_SESSION fail with EEXIST, and after boot it could not be
    /// told apart from Ferry's session.
    ///
    /// A session's identity comes from the backend, never from what an fd claims: with the
    /// emulator, only socket pairs the emulator process made are sessions (`emulatorPID`); with
    /// the kernel, emulator-looking sockets are plain sockets.
    ///
    /// - Parameter dropping: drop infringing sessions from their stores (the real update); a dry
    ///   run only reports them.
    static func collect(from manager: Manager, ownSession: String, backend: any LiveUpdateBackend, logger: Logger,
                        dropping: Bool = true) -> StoreCollection {
        var collection = StoreCollection()
        let emulatorPID = (backend as? EmulatorBackend).flatMap { EmulatorControl.serverPID(socketPath: $0.socketPath) }
        var infringing: [(Service, UInt64)] = []
        for service in manager.services.values.sorted(by: { $0.name < $1.name }) where !service.store.isEmpty {
            guard service.config.fdStorePreserve.outlivesProcess else {
                let mode = service.config.fdStorePreserve.rawValue
                collection.skipped.append("unit \(service.name): \(service.store.count) stored fd(s) not carried (FileDescriptorStorePreserve=\(mode))")
                for entry in service.store.entries {
                    collection.lost.append(Lost(unit: service.name.full, name: entry.name, type: LossReasons.kind(of: entry.descriptor),
                                                reason: "FileDescriptorStorePreserve=\(mode) keeps it across restarts only, not across a kexec"))
                }
                collection.losses.append(.init(unit: service.name.full, name: nil, count: service.store.count, reason: .preserveMode,
                                               detail: "unit \(service.name): \(service.store.count) stored fd(s) not carried (FileDescriptorStorePreserve=\(service.config.fdStorePreserve.rawValue))"))
                continue
            }
            var grouped: [(group: Int, position: Int, entry: Entry)] = []
            for entry in service.store.entries {
                guard let identity = SessionIdentity.of(entry.descriptor),
                    identity.backend == .kernel || (emulatorPID != nil && identity.makerPID == emulatorPID)
                else {
                    let plain = Entry(unit: service.name, name: entry.name, fd: entry.fd, heldAbove: entry.upstreamCopy != nil)
                    // Sessions ride by staying open, so only plain fds can be group members.
                    if let match = service.config.fdGroup(of: entry.name),
                        let index = service.config.fdGroups.firstIndex(of: match.group) {
                        grouped.append((index, match.position, plain))
                    } else {
                        collection.entries.append(plain)
                    }
                    continue
                }
                guard let sessionName = identity.name ?? (try? LiveUpdateSession.readName(fd: entry.fd)) else {
                    collection.skipped.append("unit \(service.name) fd '\(entry.name)': a LUO session whose name cannot be read, skipped")
                    collection.lost.append(Lost(unit: service.name.full, name: entry.name, type: "luo-session",
                                                reason: "a LUO session whose name cannot be read"))
                    collection.losses.append(.init(unit: service.name.full, name: entry.name, reason: .sessionUnreadable,
                                                   detail: "unit \(service.name) fd '\(entry.name)': a LUO session whose name cannot be read, skipped"))
                    continue
                }
                if sessionName == ownSession || PreparedSession.isShard(sessionName, of: ownSession) {
                    let text = "unit \(service.name) fd '\(entry.name)': session '\(sessionName)' infringes Ferry's namespace, dropped"
                    if dropping { logger.warning("\(text)") }
                    collection.skipped.append(text)
                    collection.lost.append(Lost(unit: service.name.full, name: entry.name, type: "luo-session",
                                                reason: "its session name '\(sessionName)' is reserved for Ferry's own session"))
                    collection.losses.append(.init(unit: service.name.full, name: entry.name, reason: .namespaceClash, detail: text))
                    infringing.append((service, entry.id))
                    continue
                }
                collection.entries.append(Entry(unit: service.name, name: entry.name, fd: entry.fd, sessionName: sessionName,
                                                heldAbove: entry.upstreamCopy != nil))
            }
            collection.addGroups(grouped, of: service)
        }
        if dropping { for (service, id) in infringing { manager.stores.drop(id: id, from: service) } }
        return collection
    }

    /// Members sorted by the pattern each matched first, and fds that matched the same pattern in
    /// the order they were stored (a store lists its newest first, so that is reversed here).
    private mutating func addGroups(_ grouped: [(group: Int, position: Int, entry: Entry)], of service: Service) {
        for (index, group) in service.config.fdGroups.enumerated() {
            let members = grouped.enumerated()
                .filter { $0.element.group == index }
                .sorted { ($0.element.position, -$0.offset) < ($1.element.position, -$1.offset) }
                .map(\.element.entry)
            if !members.isEmpty { groups.append(Group(unit: service.name, name: group.name, members: members)) }
        }
    }

    /// Every plain fd and session, grouped or not (what the manager above must hold).
    var allEntries: [Entry] { entries + groups.flatMap(\.members) }
}
