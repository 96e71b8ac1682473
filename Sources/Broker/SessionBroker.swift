import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdate
import Logging
import SystemPackage

/// Why the broker said no: the Varlink error and a sentence naming client, session and errno.
public struct BrokerError: Error, CustomStringConvertible {
    public var name: BrokerProtocol.ErrorName
    public var message: String
    public init(_ name: BrokerProtocol.ErrorName, _ message: String) {
        self.name = name
        self.message = message
    }
    public var description: String { "\(name.rawValue): \(message)" }
}

/// A session fd handed to a client, with the kernel name it has. The client owns `fd`.
@frozen
public struct HandedSession: ~Copyable {
    public var fd: OwnedFD
    public var kernelName: String
    /// Acquire: made just now (false: another fd to the one the client already had).
    public var created: Bool
}

/// What a session holds through the broker after a Preserve.
public struct PreservedCount: Sendable {
    public var files: Int
    public var bytes: Int64
}

/// The table of brokered sessions and its rules: who may have which, how many, how big.
///
/// Confined to the event-loop thread. Every session is created by ferryd under a kernel name
/// derived from the caller's identity (`SessionNames.brokered`), so one client can neither ask
/// for nor guess its way into another's: the same NAME from two owners is two sessions.
public final class SessionBroker {
    public let backend: any LiveUpdateBackend
    public var policy: BrokerPolicy
    let logger: Logger
    /// Outgoing sessions by kernel name (made in this boot, carried to the next).
    var outgoing: [String: BrokeredSession] = [:]
    /// Incoming sessions by kernel name (carried from the previous boot; an owner's outgoing
    /// session of the same name has the same kernel name, in the kernel's other namespace).
    var incoming: [String: BrokeredSession] = [:]
    /// Both.
    var sessions: [BrokeredSession] { Array(outgoing.values) + Array(incoming.values) }
    /// Incoming sessions that could not be retrieved after the boot, for status.
    public internal(set) var lostAfterBoot: [String] = []
    /// Why no session may be created or released now (a live update is under way: the mapping
    /// must list exactly what ferryd holds), or nil. Wired by the daemon.
    public var changesRefused: (() -> String?)?
    /// The unclaimed deadline after a boot (BrokerAccounting).
    var unclaimedTimer: TimerFD?

    public init(backend: any LiveUpdateBackend, policy: BrokerPolicy, logger: Logger) {
        self.backend = backend
        self.policy = policy
        self.logger = logger
    }

    /// Creates the caller's outgoing session `name`, or hands another fd to the one it holds.
    /// The caller owns the returned close-on-exec fd; ferryd keeps its own reference.
    ///
    /// - Throws: InvalidName, PermissionDenied (policy), QuotaExceeded (sessions), NameCollision
    ///   (the kernel name is taken by another), SessionUnavailable (device busy or missing).
    public func acquire(_ name: String, for client: ClientIdentity) throws(BrokerError) -> HandedSession {
        let quota = try admit(name, client)
        let kernelName = SessionNames.brokered(uid: client.uid, owner: client.owner, name: name)
        if let existing = outgoing[kernelName] {
            guard existing.owner == client.key else {
                throw BrokerError(.nameCollision, "session '\(name)' of \(client): kernel name \(kernelName) is already \(existing.owner)'s")
            }
            return HandedSession(fd: try duplicate(existing, for: client), kernelName: kernelName, created: false)
        }
        let held = outgoing.values.filter { $0.owner == client.key }.count
        guard held < quota.sessions else {
            throw BrokerError(.quotaExceeded, "\(client) holds \(held) of its \(quota.sessions) session(s); session '\(name)' refused")
        }
        if let why = changesRefused?() {
            throw BrokerError(.unavailable, "session '\(name)' of \(client) not created: \(why)")
        }
        let created = try create(kernelName, name: name, for: client)
        outgoing[kernelName] = created
        do throws(BrokerError) {
            let fd = try duplicate(created, for: client)
            logger.info("broker: created LUO session '\(name)' (kernel name '\(kernelName)') for \(client)")
            return HandedSession(fd: fd, kernelName: kernelName, created: true)
        } catch {
            // Never half a session: without an fd for the client, ferryd's copy goes too.
            outgoing[kernelName] = nil
            throw error
        }
    }

    /// Hands the caller the incoming session `name` it had before the kexec. Ferryd lets go of
    /// it: the caller owns the returned fd, and closing it finishes the session.
    ///
    /// - Throws: NoSuchSession, also when another client has a session of that name (nothing
    ///   tells a client what others hold).
    public func retrieve(_ name: String, for client: ClientIdentity) throws(BrokerError) -> HandedSession {
        _ = try admit(name, client)
        let kernelName = SessionNames.brokered(uid: client.uid, owner: client.owner, name: name)
        guard let record = incoming[kernelName], record.owner == client.key, record.state == .waiting,
            let session = record.session.take()
        else {
            throw BrokerError(.noSuchSession, "\(client) has no incoming session '\(name)' waiting (kernel name \(kernelName))")
        }
        record.state = .retrieved
        logger.info("broker: handed incoming LUO session '\(name)' (kernel name '\(kernelName)') back to \(client)")
        return HandedSession(fd: session.releaseDescriptor(), kernelName: kernelName, created: false)
    }

    /// PRESERVE_FD of `fd` under `token` in the caller's outgoing session `name`, within its
    /// quota. `fd` stays the caller's (the kernel keeps its own reference).
    ///
    /// - Throws: QuotaExceeded (files per session, bytes pinned), NoSuchSession, SessionUnavailable
    ///   with the kernel's errno (EEXIST token, EBUSY, ENOENT for a file LUO cannot carry).
    public func preserve(_ name: String, token: UInt64, fd: FileDescriptor, for client: ClientIdentity) throws(BrokerError) -> PreservedCount {
        let quota = try admit(name, client)
        let kernelName = SessionNames.brokered(uid: client.uid, owner: client.owner, name: name)
        guard let record = outgoing[kernelName], record.owner == client.key, record.session != nil else {
            throw BrokerError(.noSuchSession, "\(client) has no outgoing session '\(name)'; Acquire it first")
        }
        guard record.files < quota.files else {
            throw BrokerError(.quotaExceeded, "session '\(name)' of \(client) holds \(record.files) of its \(quota.files) file(s); token \(token) refused")
        }
        let size = (try? FileIO.size(of: fd)) ?? 0
        let pinned = outgoing.values.filter { $0.owner == client.key }.reduce(Int64(0)) { $0 + $1.bytes }
        guard pinned + size <= quota.bytes else {
            throw BrokerError(.quotaExceeded, "\(client) pins \(pinned) of its \(quota.bytes) byte(s); \(size) more for session '\(name)' token \(token) refused")
        }
        do throws(LiveUpdateError) {
            try record.session!.preserve(fd, token: token)
        } catch {
            throw BrokerError(.unavailable, "session '\(name)' of \(client): \(error)")
        }
        record.files += 1
        record.bytes += size
        record.tokens.insert(token)
        return PreservedCount(files: record.files, bytes: record.bytes)
    }

    /// Lets go of the caller's session `name`: an outgoing one is no longer carried (it ends
    /// when the client closes its fds too); a waiting incoming one is finished.
    public func release(_ name: String, for client: ClientIdentity) throws(BrokerError) {
        _ = try admit(name, client, policy: false)
        let kernelName = SessionNames.brokered(uid: client.uid, owner: client.owner, name: name)
        let held = outgoing[kernelName].flatMap { $0.owner == client.key ? $0 : nil }
            ?? incoming[kernelName].flatMap { $0.owner == client.key && $0.state == .waiting ? $0 : nil }
        guard let record = held else {
            throw BrokerError(.noSuchSession, "\(client) has no session '\(name)' held by ferryd")
        }
        if record.isOutgoing, let why = changesRefused?() {
            throw BrokerError(.unavailable, "session '\(name)' of \(client) not released: \(why)")
        }
        if record.state == .waiting { try? record.session?.finish() }
        record.session = nil
        if record.isOutgoing { outgoing[kernelName] = nil } else { incoming[kernelName] = nil }
        logger.info("broker: released LUO session '\(name)' (kernel name '\(kernelName)') of \(client)")
    }

    /// The caller's sessions, or everyone's for root.
    public func list(for client: ClientIdentity?) -> [JSONValue] {
        let now = MonotonicClock.microseconds()
        return sessions
            .filter { client == nil || client!.isRoot || $0.owner == client!.key }
            .sorted { ($0.owner.description, $0.name) < ($1.owner.description, $1.name) }
            .map { $0.described(now: now) }
    }

    /// Counts for `ferryctl status`: held (outgoing), waiting, overdue.
    public var summary: (held: Int, waiting: Int, overdue: Int) {
        let values = sessions
        return (values.filter(\.isOutgoing).count, values.filter { $0.state == .waiting }.count,
                values.filter { $0.state == .waiting && $0.overdue }.count)
    }

    // MARK: Helpers

    /// Checks the name and (unless told not to) the policy; returns the caller's quota.
    private func admit(_ name: String, _ client: ClientIdentity, policy checkPolicy: Bool = true) throws(BrokerError) -> BrokerPolicy.Quota {
        guard SessionNames.isValidConfiguredName(name) else {
            throw BrokerError(.invalidName, "session name '\(name.prefix(80))' of \(client) is not 1-63 printable bytes without spaces, '/' or ':'")
        }
        guard checkPolicy else { return BrokerPolicy.Quota() }
        switch policy.decide(for: client) {
        case .allowed(let quota): return quota
        case .refused(let why):
            logger.notice("broker: refused session '\(name)': \(why)")
            throw BrokerError(.permissionDenied, why)
        }
    }

    private func create(_ kernelName: String, name: String, for client: ClientIdentity) throws(BrokerError) -> BrokeredSession {
        do throws(LiveUpdateError) {
            let session = try LiveUpdateDevice.open(backend).createSession(named: kernelName)
            return BrokeredSession(name: name, kernelName: kernelName, owner: client.key, state: .held, session: session)
        } catch {
            if error.errno == .fileExists {
                throw BrokerError(.nameCollision, "session '\(name)' of \(client): an outgoing session named '\(kernelName)' exists outside the broker (EEXIST)")
            }
            throw BrokerError(.unavailable, "session '\(name)' of \(client): \(error)")
        }
    }

    private func duplicate(_ record: BrokeredSession, for client: ClientIdentity) throws(BrokerError) -> OwnedFD {
        guard let raw = record.session?.descriptor.rawValue else {
            throw BrokerError(.noSuchSession, "session '\(record.name)' of \(client) is no longer held")
        }
        do throws(SystemCallError) {
            return try OwnedFD.duplicating(raw)
        } catch {
            throw BrokerError(.unavailable, "session '\(record.name)' of \(client): \(error)")
        }
    }
}
