import FDStore
import FerrySystem
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The fd store of the manager above ferryd (systemd, or another ferryd), used as a nested
/// manager uses it (reference-systemd.md §3.9): every entry of a store that outlives its process
/// is pushed up as `sub-fdstore-<index>`, with a mapping that says whose each one is, re-pushed
/// after every change; removals go up too. The manager above then carries them across a crash
/// of ferryd (it hands them back in LISTEN_FDS) and, if it can, across a kexec.
///
/// Confined to the event-loop thread.
public final class UpstreamStore {
    /// `$NOTIFY_SOCKET` of the manager above, as given.
    public let socketPath: String
    /// `$FDSTORE`: how many fds the manager above keeps for ferryd.
    public let capacity: Int
    private let socket: OwnedFD
    private let loop: EventLoop
    private let logger: Logger
    private var nextIndex: UInt64 = 1
    /// What each pushed index holds, for the mapping.
    private var pushed: [UInt64: (unit: UnitName, name: String)] = [:]
    private var everPushed = false
    /// A zero-delay timer: changes made in one turn of the loop send one mapping.
    private var mappingTimer: TimerFD?

    /// The manager above, when it offers a store: `$NOTIFY_SOCKET` set and `$FDSTORE` > 0.
    public static func detect(loop: EventLoop, logger: Logger) -> UpstreamStore? {
        guard let path = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), !path.isEmpty,
            let capacity = getenv("FDSTORE").flatMap({ Int(String(cString: $0)) }), capacity > 0
        else { return nil }
        do throws(SystemCallError) {
            return try UpstreamStore(socketPath: path, capacity: capacity, loop: loop, logger: logger)
        } catch {
            logger.warning("the manager above offers a store (FDSTORE=\(capacity)) but \(path) cannot be reached: \(error); not forwarding")
            return nil
        }
    }

    init(socketPath: String, capacity: Int, loop: EventLoop, logger: Logger) throws(SystemCallError) {
        self.socketPath = socketPath
        self.capacity = capacity
        self.loop = loop
        self.logger = logger
        let address = socketPath.hasPrefix("@") ? "\0" + socketPath.dropFirst() : socketPath
        socket = try UnixSocket.connect(path: address, kind: .datagram)
        // The manager above is trusted, but a stalled one must not hang ferryd for ever.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket.rawValue, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// How many entries the manager above holds for ferryd's units now.
    public var count: Int { pushed.count }

    /// The FDNAME of the live update's own state (which units ran, the kexec count, timings),
    /// pushed just before ferryd asks the manager above for a kexec.
    public static let updateStateName = "ferry-update-state"

    /// FDNAME prefix of the sessions ferryd's broker holds for clients, pushed up (as
    /// `ferry-broker-<kernel name>`) when the manager above performs the kexec.
    public static let brokerSessionPrefix = "ferry-broker-"

    /// FDNAME prefix of the sessions a restore retrieved from the previous kernel, held above
    /// (as `ferry-incoming-<session name>`) from RETRIEVE_SESSION until FINISH: a retrieved
    /// session whose last fd closes is gone, so a ferryd that dies in between would lose every
    /// file not yet in a store, where the manager above does not carry a kexec (systemd < 261).
    public static let incomingSessionPrefix = "ferry-incoming-"

    /// The incoming sessions held above now, by session name.
    private var incomingHeld: Set<String> = []

    // MARK: - Upward

    /// Pushes a copy of an incoming session, replacing an earlier one; the caller keeps `fd`.
    public func holdIncomingSession(_ fd: CInt, name: String) throws(SystemCallError) {
        let fdName = Self.incomingSessionPrefix + name
        try send("FDSTOREREMOVE=1\nFDNAME=\(fdName)")
        try send("FDSTORE=1\nFDNAME=\(fdName)\nFDPOLL=0", descriptors: [fd])
        incomingHeld.insert(name)
    }

    /// Tells the manager above that the incoming sessions it held for a start of ferryd (`names`,
    /// handed back in LISTEN_FDS) are still there, so that `dropIncomingSessions` drops them too.
    public func noteIncomingSessionsHeld(_ names: [String]) {
        incomingHeld.formUnion(names)
    }

    /// Drops every incoming session held above (the restore FINISHed: its fds are in their
    /// stores, and those are held above entry by entry).
    public func dropIncomingSessions() {
        for name in incomingHeld.sorted() {
            try? send("FDSTOREREMOVE=1\nFDNAME=\(Self.incomingSessionPrefix)\(name)")
        }
        incomingHeld = []
    }

    /// Pushes a brokered session up for the kexec, replacing an earlier copy; the caller keeps `fd`.
    public func pushBrokerSession(_ fd: CInt, kernelName: String) throws(SystemCallError) {
        try send("FDSTOREREMOVE=1\nFDNAME=\(Self.brokerSessionPrefix)\(kernelName)")
        try send("FDSTORE=1\nFDNAME=\(Self.brokerSessionPrefix)\(kernelName)\nFDPOLL=0", descriptors: [fd])
    }

    /// Drops the copy above of a brokered session (taken back, or the update rolled back).
    public func dropBrokerSession(kernelName: String) {
        try? send("FDSTOREREMOVE=1\nFDNAME=\(Self.brokerSessionPrefix)\(kernelName)")
    }

    /// Pushes the live update's state, replacing an earlier one.
    public func pushUpdateState(_ bytes: [UInt8]) throws(SystemCallError) {
        let memfd = try Memfd.create(name: Self.updateStateName, contents: bytes)
        try send("FDSTOREREMOVE=1\nFDNAME=\(Self.updateStateName)")
        try send("FDSTORE=1\nFDNAME=\(Self.updateStateName)\nFDPOLL=0", descriptors: [memfd.rawValue])
    }

    /// Drops the live update's state above (read after boot, or the update rolled back).
    public func dropUpdateState() {
        try? send("FDSTOREREMOVE=1\nFDNAME=\(Self.updateStateName)")
    }

    /// Pushes `entry` of `unit` up, unless it is there already. A failure is logged and the entry
    /// stays only here (it still rides ferryd's own live update).
    func forward(_ entry: FDStore.Entry, of unit: UnitName) {
        guard entry.upstreamCopy == nil else { return }
        let index = nextIndex
        let name = UpstreamMapping.fdName(index: index)
        do throws(SystemCallError) {
            try send("FDSTOREREMOVE=1\nFDNAME=\(name)")
            try send("FDSTORE=1\nFDNAME=\(name)\nFDPOLL=0", descriptors: [entry.fd])
        } catch {
            logger.warning("\(unit): fd '\(entry.name)' could not be pushed to the manager above (\(error)); it is kept here only")
            return
        }
        nextIndex += 1
        adopt(entry, of: unit, index: index)
    }

    /// Records that the manager above holds `entry` at `index` (pushed now, or found at start).
    func adopt(_ entry: FDStore.Entry, of unit: UnitName, index: UInt64) {
        pushed[index] = (unit, entry.name)
        everPushed = true
        nextIndex = max(nextIndex, index + 1)
        entry.upstreamCopy = UpstreamCopy(index: index) { [weak self] index in self?.entryEnded(index) }
        mappingChanged()
    }

    private func entryEnded(_ index: UInt64) {
        guard pushed.removeValue(forKey: index) != nil else { return }
        do throws(SystemCallError) {
            try send("FDSTOREREMOVE=1\nFDNAME=\(UpstreamMapping.fdName(index: index))")
        } catch {
            logger.warning("could not tell the manager above to drop \(UpstreamMapping.fdName(index: index)): \(error)")
        }
        mappingChanged()
    }

    /// Drops every entry above, and the mapping (a rehearsal's simulated kexec: a real one ends
    /// systemd < 261's copies of the old files, and a restore cut short by a crash must find above
    /// only what it stored itself). The entries stay in their stores here.
    public func dropAllEntries() {
        let indices = pushed.keys.sorted()
        pushed = [:]
        for index in indices {
            try? send("FDSTOREREMOVE=1\nFDNAME=\(UpstreamMapping.fdName(index: index))")
        }
        if everPushed { try? send("FDSTOREREMOVE=1\nFDNAME=\(UpstreamMapping.mappingName)") }
    }

    /// Indices the manager above holds, placed or not: new entries are numbered after them, so
    /// pushing one never replaces an fd kept above.
    func reserve(_ indices: [UInt64]) {
        if let highest = indices.max() { nextIndex = max(nextIndex, highest + 1) }
    }

    /// The mapping goes up once the current turn of the loop is done.
    func mappingChanged() {
        guard mappingTimer == nil, let timer = try? TimerFD() else {
            if mappingTimer == nil { pushMapping() }
            return
        }
        let fd = timer.descriptor.rawValue
        timer.arm(after: .zero)
        mappingTimer = consume timer
        try? loop.watch(fd, for: .readable) { [unowned self] _ in
            loop.unwatch(fd)
            mappingTimer = nil
            pushMapping()
        }
    }

    /// Sends the mapping now, replacing the previous one (or only removing it when empty).
    public func pushMapping() {
        var mapping = UpstreamMapping()
        for (index, entry) in pushed.sorted(by: { $0.key < $1.key }) {
            let mapped = UpstreamMapping.Entry(name: entry.name, index: index)
            if let position = mapping.units.firstIndex(where: { $0.unit == entry.unit.full }) {
                mapping.units[position].entries.append(mapped)
            } else {
                mapping.units.append((entry.unit.full, [mapped]))
            }
        }
        guard everPushed else { return }
        do {
            try send("FDSTOREREMOVE=1\nFDNAME=\(UpstreamMapping.mappingName)")
            guard !pushed.isEmpty else { return }
            let memfd = try Memfd.create(name: UpstreamMapping.mappingName, contents: mapping.encoded())
            try send("FDSTORE=1\nFDNAME=\(UpstreamMapping.mappingName)\nFDPOLL=0", descriptors: [memfd.rawValue])
        } catch {
            logger.warning("could not push the fd-store mapping to the manager above: \(error)")
        }
    }

    private func send(_ fields: String, descriptors: [CInt] = []) throws(SystemCallError) {
        try UnixSocket.send(socket.borrowed, Array(fields.utf8), descriptors: descriptors)
    }
}
