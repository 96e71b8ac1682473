import FerryJSON
import FerrySystem
import LiveUpdate

/// Brokered sessions across a kexec. Before it, ferryd holds every outgoing session open (that
/// is what carries it) and records who owns each in the mapping's `state.ferry.broker`:
///
///     {"version": 1, "sessions": [{"name": "vm", "kernelName": "fb-…", "uid": 65534,
///                                  "owner": "cgroup=/system.slice/vmm.service", "files": 1, "bytes": 4096}]}
///
/// After it, ferryd retrieves each listed session and holds it, waiting, until the same owner
/// asks for it by name (`Retrieve`), or the unclaimed deadline passes (`BrokerAccounting`).
extension SessionBroker {
    static let carryVersion = 1

    /// What rides `state.ferry.broker`: every outgoing session ferryd holds.
    public func carried() -> JSONValue {
        let held = outgoing.values.sorted { $0.kernelName < $1.kernelName }
        if !held.isEmpty {
            let owners = Set(held.map(\.owner)).count
            logger.info("broker: \(held.count) session(s) of \(owners) client(s) ride the kexec, held open by ferryd")
        }
        return .object([
            "version": .number(Double(Self.carryVersion)),
            "sessions": .array(held.map { record in
                .object([
                    "name": .string(record.name), "kernelName": .string(record.kernelName),
                    "uid": .number(Double(record.owner.uid)), "owner": .string(record.owner.owner),
                    "files": .number(Double(record.files)), "bytes": .number(Double(record.bytes)),
                ])
            }),
        ])
    }

    /// The outgoing sessions ferryd holds, by kernel name, for handing up to a manager above that
    /// performs the kexec. The numbers stay owned by the broker.
    public var heldDescriptors: [(kernelName: String, fd: CInt)] {
        outgoing.values.sorted { $0.kernelName < $1.kernelName }.compactMap { record in
            let fd = record.session?.descriptor.rawValue ?? -1
            return fd < 0 ? nil : (record.kernelName, fd)
        }
    }

    /// How many sessions the next kexec carries for clients.
    public var carriedCount: Int { outgoing.count }

    /// After the boot: retrieves each session the previous ferryd carried and holds it for its
    /// owner. A session that cannot be retrieved is reported (log, status) and skipped; a
    /// document of another version is reported and ignored (its sessions are finished by the
    /// kernel when nobody retrieves them).
    ///
    /// - Returns: problems, each naming the session and its owner.
    ///
    /// - Parameters:
    ///   - handedBack: sessions the manager above carried and handed back (`ferry-broker-NAME`),
    ///     by kernel name; this call owns their descriptors (adopted, or closed).
    ///   - sameBoot: the kexec did not happen (a rehearsal by the manager above, or a cancelled
    ///     kexec): a handed-back session may still be outgoing, which its direction tells.
    @discardableResult
    public func adoptCarried(_ state: JSONValue?, handedBack: [(kernelName: String, fd: CInt)] = [],
                             sameBoot: Bool = false) -> [String] {
        // Raw numbers owned here until adopted; whatever is left is closed on the way out.
        var given = Dictionary(handedBack.map { ($0.kernelName, $0.fd) }) { first, second in
            _ = OwnedFD(adopting: second)
            return first
        }
        defer {
            for (kernelName, fd) in given.sorted(by: { $0.key < $1.key }) {
                logger.warning("broker: the manager above handed back session '\(kernelName)', which no carried entry names; closed")
                _ = OwnedFD(adopting: fd)
            }
        }
        guard let state, state != .null else { return [] }
        guard state["version"]?.number == Double(Self.carryVersion), let list = state["sessions"]?.array else {
            let problem = "broker: carried sessions in an unknown format (version \(state["version"]?.number.map { "\(Int($0))" } ?? "missing")), none retrieved"
            logger.warning("\(problem)")
            lostAfterBoot.append(problem)
            return [problem]
        }
        var problems: [String] = []
        var adopted = 0
        for item in list {
            guard let name = item["name"]?.string, let kernelName = item["kernelName"]?.string,
                kernelName.hasPrefix(SessionNames.brokeredPrefix), let uid = item["uid"]?.number, uid >= 0, uid < 4_294_967_296,
                let owner = item["owner"]?.string
            else {
                problems.append("broker: a carried session entry is incomplete, skipped: \(item.encodedString().prefix(200))")
                continue
            }
            let key = OwnerKey(uid: UInt32(uid), owner: owner)
            // The name must be the one this owner's NAME derives to: a forged document cannot
            // hand one client's session to another.
            guard SessionNames.brokered(uid: key.uid, owner: key.owner, name: name) == kernelName else {
                problems.append("broker: carried session '\(name)' of \(key) does not have its derived kernel name ('\(kernelName)'), skipped")
                continue
            }
            if let fd = given.removeValue(forKey: kernelName) {
                let session = LiveUpdateSession(adopting: OwnedFD(adopting: fd), name: kernelName, direction: nil, backend: backend)
                let outgoing = sameBoot && Self.isOutgoing(session)
                let record = BrokeredSession(name: name, kernelName: kernelName, owner: key, state: outgoing ? .held : .waiting,
                                             session: session)
                record.files = Int(item["files"]?.number ?? 0)
                record.bytes = Int64(item["bytes"]?.number ?? 0)
                if outgoing { self.outgoing[kernelName] = record } else { incoming[kernelName] = record }
                adopted += outgoing ? 0 : 1
                continue
            }
            do throws(LiveUpdateError) {
                let session = try LiveUpdateDevice.open(backend).retrieveSession(named: kernelName)
                let record = BrokeredSession(name: name, kernelName: kernelName, owner: key, state: .waiting, session: session)
                record.files = Int(item["files"]?.number ?? 0)
                record.bytes = Int64(item["bytes"]?.number ?? 0)
                incoming[kernelName] = record
                adopted += 1
            } catch {
                problems.append("broker: session '\(name)' (kernel name '\(kernelName)') of \(key) could not be retrieved: \(error)")
            }
        }
        for problem in problems { logger.warning("\(problem)") }
        lostAfterBoot += problems
        if adopted > 0 { logger.info("broker: holding \(adopted) incoming session(s) for their owners (unclaimed after \(policy.unclaimedAfter): \(policy.unclaimedAction.rawValue))") }
        return problems
    }

    /// RETRIEVE_FD is refused with EINVAL on an outgoing session (7.2+ and the emulator) and
    /// answers ENOENT (or a file) on an incoming one; a file retrieved here is closed at once
    /// (the client can retrieve it again).
    static func isOutgoing(_ session: borrowing LiveUpdateSession) -> Bool {
        var argument: RequestBuffer? = RequestBuffer(for: .retrieveFD)
        argument!.token = UInt64.max
        let code = session.rawIoctl(LiveUpdateRequest.retrieveFD.rawValue, &argument)
        if code == nil, let fd = argument?.fd, fd >= 0 { _ = OwnedFD(adopting: fd) }
        return code == .invalidArgument
    }
}
