import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The broker with a real ferryd on the emulator: unprivileged clients through `ferryctl session`,
/// rehearsed live updates, refusals, LUOSession= units, and 100 clients at once.
@Suite struct BrokerProcessTests {
    static let policy = """
        deny uid=1000
        allow uid=65534 sessions=2 files=4 bytes=1M
        allow uid=65533 sessions=2
        allow uid=0 sessions=300
        """

    /// A ferryd on `emulator` with `policy`.
    static func ferryd(_ emulator: EmulatorHost, policy: String = policy, units: [String: String] = [:]) throws -> (FerrydInstance, TemporaryDirectory) {
        let folder = TemporaryDirectory("broker-policy")
        folder.write("broker.conf", policy)
        let ferryd = try FerrydInstance(units: units, extraArguments: ["--liveupdate-emulator", emulator.socketPath,
                                                                      "--broker-policy", "\(folder.path)/broker.conf"])
        return (ferryd, folder)
    }

    /// Runs `ferryctl ARGS…` as `uid` (setpriv); returns its exit status and output.
    static func ferryctl(as uid: Int, _ arguments: [String]) throws -> (status: CInt, output: String) {
        let identity = uid == 0 ? [] : ["/usr/bin/setpriv", "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups"]
        let child = try Child.spawn(identity + [ferryctlPath] + arguments)
        let status = child.wait()
        return (status, child.output)
    }

    static func broker(_ ferryd: FerrydInstance) -> String { "\(ferryd.directory.path)/run/broker" }

    @Test func nobodyGetsItsSessionBackAfterARehearsedUpdate() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator)
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let saved = try Self.ferryctl(as: 65534, ["session", "run", "vm", "--broker", broker, "--",
                                                      ferryctlPath, "session", "memfd", "save", "vm", "--text", "guest-ram"])
            #expect(saved.status == 0, "\(saved.output)")
            #expect(saved.output.contains("saved token 1 in the session from LISTEN_FDS"))
            // The client is gone; ferryd holds its session.
            let before = try ferryd.call("GetManager").parameters["broker"]
            #expect(before?["held"]?.number == 1, "\(String(describing: before))")

            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            #expect(try ferryd.call("GetManager").parameters["broker"]?["waiting"]?.number == 1)
            let verified = try Self.ferryctl(as: 65534, ["session", "run", "vm", "--broker", broker, "--",
                                                         ferryctlPath, "session", "memfd", "verify", "vm", "--text", "guest-ram"])
            #expect(verified.status == 0, "\(verified.output)\n\(ferryd.log)")
            #expect(verified.output.contains("verified token 1 from LISTEN_FDS"))
            let after = try ferryd.call("GetManager").parameters["broker"]
            #expect(after?["waiting"]?.number == 0 && after?["held"]?.number == 1, "\(String(describing: after))")
            #expect(ferryd.log.contains("handed incoming LUO session 'vm'"))
        }
    }

    @Test func aReexecOfFerrydKeepsEverySessionItHolds() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator)
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let saved = try Self.ferryctl(as: 65534, ["session", "memfd", "save", "vm", "--through-broker", "--text", "kept", "--broker", broker])
            #expect(saved.status == 0, "\(saved.output)")
            let before = ferryd.settledDescriptors()
            #expect(try ferryd.call("Reexecute").error == nil)
            #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
            #expect(ferryd.settledDescriptors() == before)
            let listed = try Self.ferryctl(as: 65534, ["session", "list", "--json", "--broker", broker])
            let session = JSONValue.parse(Array(listed.output.utf8))?["sessions"]?.array?.first
            #expect(session?["state"]?.string == "held" && session?["files"]?.number == 1, "\(listed.output)")

            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            let back = try Self.ferryctl(as: 65534, ["session", "memfd", "verify", "vm", "--text", "kept", "--broker", broker])
            #expect(back.status == 0, "\(back.output)")
        }
    }

    @Test func anotherClientCannotObtainOrRetrieveTheSession() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator)
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let saved = try Self.ferryctl(as: 65534, ["session", "memfd", "save", "vm", "--text", "mine", "--broker", broker])
            #expect(saved.status == 0, "\(saved.output)")
            // Same name, other uid: a session of its own, which holds nothing of the first.
            let other = try Self.ferryctl(as: 65533, ["session", "run", "vm", "--broker", broker, "--", "/bin/sh", "-c",
                                                      "echo fd3=$FERRY_SESSION_FD fds=$LISTEN_FDS"])
            #expect(other.status == 0 && other.output.contains("fd3=3 fds=1"), "\(other.output)")
            let list = try Self.ferryctl(as: 0, ["session", "list", "--json", "--broker", broker])
            let sessions = JSONValue.parse(Array(list.output.utf8))?["sessions"]?.array ?? []
            #expect(sessions.count == 2)
            #expect(Set(sessions.compactMap { $0["kernelName"]?.string }).count == 2)
            // Each client lists only its own.
            let own = try Self.ferryctl(as: 65533, ["session", "list", "--json", "--broker", broker])
            #expect(JSONValue.parse(Array(own.output.utf8))?["sessions"]?.array?.count == 1)

            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            let stolen = try Self.ferryctl(as: 65533, ["session", "memfd", "verify", "vm", "--text", "mine", "--broker", broker])
            #expect(stolen.status != 0, "\(stolen.output)")
            #expect(!stolen.output.contains("verified"))
            let back = try Self.ferryctl(as: 65534, ["session", "memfd", "verify", "vm", "--text", "mine", "--broker", broker])
            #expect(back.status == 0, "\(back.output)")
        }
    }

    @Test func policyAndQuotaRefusalsAreWholeAndSayWhy() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator)
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let denied = try Self.ferryctl(as: 1000, ["session", "run", "vm", "--broker", broker, "--", "/bin/true"])
            #expect(denied.status == 4 && denied.output.contains("denies uid 1000"), "\(denied.output)")
            let stranger = try Self.ferryctl(as: 4242, ["session", "run", "vm", "--broker", broker, "--", "/bin/true"])
            #expect(stranger.status == 4 && stranger.output.contains("no rule"), "\(stranger.output)")
            for name in ["a", "b"] {
                #expect(try Self.ferryctl(as: 65534, ["session", "run", name, "--broker", broker, "--", "/bin/true"]).status == 0)
            }
            let third = try Self.ferryctl(as: 65534, ["session", "run", "c", "--broker", broker, "--", "/bin/true"])
            #expect(third.status == 4 && third.output.contains("holds 2 of its 2 session(s); session 'c' refused"), "\(third.output)")
            for token in 1...4 {
                let saved = try Self.ferryctl(as: 65534, ["session", "memfd", "save", "a", "--through-broker", "--token", "\(token)", "--broker", broker])
                #expect(saved.status == 0, "\(saved.output)")
            }
            let fifth = try Self.ferryctl(as: 65534, ["session", "memfd", "save", "a", "--through-broker", "--token", "5", "--broker", broker])
            #expect(fifth.status == 4 && fifth.output.contains("holds 4 of its 4 file(s); token 5 refused"), "\(fifth.output)")
            let bad = try Self.ferryctl(as: 65534, ["session", "run", "no/slash", "--broker", broker, "--", "/bin/true"])
            #expect(bad.status == 1 && bad.output.contains("is not 1-63 printable bytes"), "\(bad.output)")
            let list = try Self.ferryctl(as: 0, ["session", "list", "--json", "--broker", broker])
            let sessions = JSONValue.parse(Array(list.output.utf8))?["sessions"]?.array ?? []
            #expect(sessions.count == 2)
            #expect(sessions.first { $0["name"]?.string == "a" }?["files"]?.number == 4)
            #expect(ferryd.log.contains("refused session 'vm': the broker policy"))
        }
    }

    @Test func luoSessionUnitsGetTheirOwnSessionsAndNoOther() throws {
        try withEmulator { emulator in
            let unit = { (mode: String) in """
                [Service]
                Type=oneshot
                User=nobody
                ExecStart=\(ferryctlPath) session memfd \(mode) vm --text unit-state
                LUOSession=vm
                FileDescriptorStoreMax=4
                FileDescriptorStorePreserve=yes
                """ }
            let (ferryd, policyFolder) = try Self.ferryd(emulator, units: ["vmm.service": unit("save")])
            defer { withExtendedLifetime(policyFolder) {} }
            #expect(try ferryd.start("vmm.service") == "inactive (dead-resources-pinned)", "\(ferryd.log)")
            #expect(ferryd.log.contains("saved token 1 in the session from LISTEN_FDS"), "\(ferryd.log)")
            #expect(ferryd.log.contains("handed out LUO session 'vm' (kernel name '"))
            #expect(try ferryd.storeNames("vmm.service") == ["vm"])

            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            ferryd.writeUnit("vmm.service", unit("verify"))
            #expect(try ferryd.call("Reload").error == nil)
            #expect(try ferryd.start("vmm.service") == "inactive (dead-resources-pinned)", "\(ferryd.log)")
            #expect(ferryd.log.contains("verified token 1 from LISTEN_FDS"), "\(ferryd.log)")
            // The incoming one (restored) and a fresh outgoing one, both under the configured name.
            #expect(try ferryd.storeNames("vmm.service") == ["vm", "vm"])
            // The next update carries the one outgoing session of that name, and loses nothing.
            let second = try LiveUpdateScenarioTests.rehearse(ferryd)
            #expect((second["problems"]?.array ?? []).isEmpty && (second["losses"]?.array ?? []).isEmpty, "\(second)")
            let namesAfter = try ferryd.storeNames("vmm.service")
            #expect(namesAfter == ["vm"], "\(namesAfter) \(second) \(ferryd.log.suffix(5000))")

            // A session the unit made itself is refused: LUOSession= units store only their own.
            ferryd.writeUnit("own.service", LiveUpdateScenarioTests.testUnit("store", prefix: "own", extra: "LUOSession=vm"))
            #expect(try ferryd.call("Reload").error == nil)
            _ = try ferryd.start("own.service")
            #expect(ferryd.log.contains("own.service: refused (EACCES) fd 'own-direct': LUO session 'own-direct'"), "\(ferryd.log)")
            #expect(!(try ferryd.storeNames("own.service")).contains("own-direct"))
        }
    }

    @Test func unclaimedSessionsAreReportedAndFinishedAfterTheDeadline() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator, policy: "allow uid=65534\nunclaimed-after 1s\nunclaimed-action finish")
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let saved = try Self.ferryctl(as: 65534, ["session", "memfd", "save", "vm", "--text", "forgotten", "--broker", broker])
            #expect(saved.status == 0, "\(saved.output)")
            _ = try LiveUpdateScenarioTests.rehearse(ferryd)
            #expect(ferryd.waitUntil(seconds: 10) { ferryd.log.contains("was not retrieved within 1.0 seconds; finished and released") },
                    "\(ferryd.log)")
            let status = try Self.ferryctl(as: 0, ["status", "--control", ferryd.control])
            #expect(status.output.contains("Unclaimed: 'vm' (kernel name fb-"), "\(status.output)")
            #expect(status.output.contains("Broker: 0 session(s) held for clients, 0 incoming waiting"), "\(status.output)")
            let json = try Self.ferryctl(as: 0, ["status", "--json", "--control", ferryd.control])
            let session = JSONValue.parse(Array(json.output.utf8))?["broker"]?["sessions"]?.array?.first
            #expect(session?["state"]?.string == "finished" && session?["overdue"]?.bool == true, "\(json.output)")
            let late = try Self.ferryctl(as: 65534, ["session", "memfd", "verify", "vm", "--text", "forgotten", "--broker", broker])
            #expect(late.status == 1 && late.output.contains("no incoming session 'vm' waiting"), "\(late.output)")
        }
    }

    @Test func hundredConcurrentClientsLoseNothingAndLeakNoFD() throws {
        try withEmulator { emulator in
            let (ferryd, policyFolder) = try Self.ferryd(emulator)
            defer { withExtendedLifetime(policyFolder) {} }
            let broker = Self.broker(ferryd)
            let baseline = ferryd.settledDescriptors()
            let clients = 100
            let results = Results(count: clients)
            let started = MonotonicClock.now()
            let threads = (0..<clients).map { index in
                Thread { results.set(index, Self.acquireAndCheck(broker: broker, name: "load-\(index)")) }
            }
            for thread in threads { thread.start() }
            for thread in threads { thread.join() }
            let elapsed = MonotonicClock.now() - started
            let failures = results.values.enumerated().filter { $0.element != nil }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            let list = try Self.ferryctl(as: 0, ["session", "list", "--json", "--broker", broker])
            let names = Set((JSONValue.parse(Array(list.output.utf8))?["sessions"]?.array ?? []).compactMap { $0["name"]?.string })
            #expect(names == Set((0..<clients).map { "load-\($0)" }))
            // ferryd holds exactly one fd per session, nothing per finished connection.
            #expect(ferryd.settledDescriptors() == baseline + clients)
            for index in 0..<clients {
                #expect(try Self.ferryctl(as: 0, ["session", "release", "load-\(index)", "--broker", broker]).status == 0)
            }
            #expect(ferryd.settledDescriptors() == baseline)
            print("broker load: \(clients) concurrent Acquire calls answered in \(elapsed)")
        }
    }

    /// One client: connect, Acquire, check the fd is the named session; nil on success.
    static func acquireAndCheck(broker: String, name: String) -> String? {
        do {
            let client = try BrokerClient(path: broker)
            var answer = try client.call(Varlink.Call(method: BrokerProtocol.Method.acquire.qualified, parameters: ["name": .string(name)]))
            if let error = answer.reply.error { return "\(name): \(error) \(answer.reply.parameters)" }
            guard let fd = answer.descriptor.take() else { return "\(name): no fd" }
            let kernelName = answer.reply.parameters["kernelName"]?.string
            guard let identity = SessionIdentity.of(fd.borrowed), identity.name == kernelName else {
                return "\(name): the fd is not session \(kernelName ?? "?")"
            }
            return nil
        } catch {
            return "\(name): \(error)"
        }
    }

    final class Results: @unchecked Sendable {
        private let lock = NSLockLike()
        private var storage: [String?]
        init(count: Int) { storage = Array(repeating: "not run", count: count) }
        func set(_ index: Int, _ value: String?) { lock.locked { storage[index] = value } }
        var values: [String?] { lock.locked { storage } }
    }
}

/// A pthread mutex, for the load test's results.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// A plain pthread running `body`, joined by the test.
final class Thread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    private var handle = pthread_t()
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&handle, nil, { context in
            let thread = Unmanaged<Thread>.fromOpaque(context!).takeRetainedValue()
            thread.body()
            return nil
        }, context)
    }
    func join() { pthread_join(handle, nil) }
}
