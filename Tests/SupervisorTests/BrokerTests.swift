import Broker
import Supervisor
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import Logging
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The broker's rules in-process, against the emulator: names, policy, quotas, ownership, the
/// carry across a simulated kexec, and the unclaimed deadline.
@Suite struct BrokerTests {
    static let nobody = ClientIdentity(uid: 65534, pid: 100, cgroup: "/system.slice/vmm.service", unit: nil)
    static let other = ClientIdentity(uid: 65534, pid: 101, cgroup: "/system.slice/db.service", unit: nil)

    static func broker(_ emulator: EmulatorHost, policy text: String) -> SessionBroker {
        var logger = Logger(label: "test.broker")
        logger.logLevel = .critical
        let (policy, warnings) = BrokerPolicy.parse(text, source: "test")
        #expect(warnings.isEmpty, "\(warnings)")
        return SessionBroker(backend: emulator.backend, policy: policy, logger: logger)
    }

    @Test func sipHashMatchesThePapersVectors() {
        let key = (SipHash24.littleEndianWordForTests(Array(0...15), at: 0), SipHash24.littleEndianWordForTests(Array(0...15), at: 8))
        #expect(SipHash24.hash([], key: key) == 0x726f_db47_dd0e_0e31)
        #expect(SipHash24.hash(Array(0...14), key: key) == 0xa129_ca61_49be_45e5)
        #expect(SipHash24.hash(Array(0...7), key: key) == 0x93f5_f579_9a93_2462)
    }

    @Test func kernelNamesSeparateOwnersAndNeverMeetFerrysOwn() {
        let a = SessionNames.brokered(uid: 65534, owner: Self.nobody.owner, name: "vm")
        let b = SessionNames.brokered(uid: 65534, owner: Self.other.owner, name: "vm")
        let c = SessionNames.brokered(uid: 1000, owner: Self.nobody.owner, name: "vm")
        #expect(Set([a, b, c]).count == 3)
        #expect(a.hasPrefix("fb-") && a.count == 19)
        let unit = SessionNames.unitSession(cgroupPath: "/system.slice/vmm.service", name: "vm")
        #expect(unit.count == 16 && unit.allSatisfy(\.isHexDigit))
        #expect(unit != SessionNames.unitSession(cgroupPath: "/system.slice/db.service", name: "vm"))
        for name in [a, unit] { #expect(name != "ferry" && !name.hasPrefix("ferry.")) }
        #expect(!SessionNames.isValidConfiguredName("a b") && !SessionNames.isValidConfiguredName("a:b")
                && !SessionNames.isValidConfiguredName("") && !SessionNames.isValidConfiguredName(String(repeating: "x", count: 64)))
    }

    @Test func policyFirstMatchWinsAndBadLinesNeverAllow() {
        let (policy, warnings) = BrokerPolicy.parse("""
            # comment
            deny uid=1000
            allow uid=65534 cgroup=/system.slice/ sessions=2 files=3 bytes=64K
            allow uid=* unit=vmm.service sessions=1
            allow uid=nobody
            unclaimed-after 5min
            unclaimed-action finish
            """, source: "p")
        #expect(warnings.count == 1 && warnings[0].contains("line 5"))
        #expect(policy.unclaimedAfter == .seconds(300) && policy.unclaimedAction == .finish)
        guard case .allowed(let quota) = policy.decide(for: Self.nobody) else { Issue.record("nobody refused"); return }
        #expect(quota.sessions == 2 && quota.files == 3 && quota.bytes == 65536)
        #expect(policy.decide(for: ClientIdentity(uid: 1000, pid: 1, cgroup: "/", unit: nil)) != .allowed(quota))
        guard case .allowed(let unitQuota) = policy.decide(for: ClientIdentity(uid: 7, pid: 1, cgroup: nil, unit: "vmm.service")) else {
            Issue.record("unit rule did not match"); return
        }
        #expect(unitQuota.sessions == 1)
        guard case .refused(let why) = policy.decide(for: ClientIdentity(uid: 7, pid: 1, cgroup: "/user.slice", unit: nil)) else {
            Issue.record("unmatched client allowed"); return
        }
        #expect(why.contains("no rule"))
        #expect(BrokerPolicy.builtIn.decide(for: Self.nobody) != .allowed(BrokerPolicy.Quota()))
    }

    @Test func quotaRefusalsLeaveNothingBehind() throws {
        try withEmulator { emulator in
            let broker = Self.broker(emulator, policy: "allow uid=65534 sessions=1 files=1 bytes=8K")
            let first = try broker.acquire("vm", for: Self.nobody)
            let firstCreated = first.created, firstName = first.kernelName
            #expect(firstCreated)
            #expect(throws: BrokerError.self) { _ = try broker.acquire("second", for: Self.nobody) }
            do throws(BrokerError) { _ = try broker.acquire("second", for: Self.nobody) } catch { #expect(error.name == .quotaExceeded) }
            // Asking again for the same session is not a new one.
            let again = try broker.acquire("vm", for: Self.nobody)
            let againCreated = again.created, againName = again.kernelName
            #expect(!againCreated && againName == firstName)
            #expect(broker.list(for: Self.nobody).count == 1)

            let big = try Memfd.create(name: "big", contents: [UInt8](repeating: 1, count: 16384))
            do throws(BrokerError) { _ = try broker.preserve("vm", token: 1, fd: big.borrowed, for: Self.nobody); Issue.record("16 KiB over an 8 KiB quota") } catch {
                #expect(error.name == .quotaExceeded && error.message.contains("8192"))
            }
            let small = try Memfd.create(name: "small", contents: Array("hello".utf8))
            let count = try broker.preserve("vm", token: 1, fd: small.borrowed, for: Self.nobody)
            #expect(count.files == 1 && count.bytes == 5)
            let more = try Memfd.create(name: "more", contents: Array("x".utf8))
            do throws(BrokerError) { _ = try broker.preserve("vm", token: 2, fd: more.borrowed, for: Self.nobody); Issue.record("second file over files=1") } catch {
                #expect(error.name == .quotaExceeded)
            }
            let carried = broker.carried()
            #expect(carried["sessions"]?.array?.count == 1)
            #expect(carried["sessions"]?.array?.first?["files"]?.number == 1)
        }
    }

    @Test func anotherClientCanNeitherTakeNorRetrieveIt() throws {
        try withEmulator { emulator in
            let policy = "allow uid=65534 sessions=4"
            let before = Self.broker(emulator, policy: policy)
            let mine = try before.acquire("vm", for: Self.nobody)
            let mineName = mine.kernelName
            let memfd = try Memfd.create(name: "state", contents: Array("vm-state".utf8))
            try LiveUpdateSession.adopt(mine.fd).preserve(memfd.borrowed, token: 7)
            // The other client asking for "vm" gets a session of its own, never the first one.
            let theirsName = try before.acquire("vm", for: Self.other).kernelName
            #expect(theirsName != mineName)
            do throws(BrokerError) { try before.release("vm", for: Self.other) } catch { Issue.record("\(error)") }
            let state = before.carried()

            _ = try EmulatorControl.simulateKexec(socketPath: emulator.socketPath)
            let after = Self.broker(emulator, policy: policy)
            #expect(after.adoptCarried(state).isEmpty)
            do throws(BrokerError) { _ = try after.retrieve("vm", for: Self.other); Issue.record("another client retrieved it") } catch {
                #expect(error.name == .noSuchSession)
            }
            // A fresh outgoing session of the same name (same kernel name, the kernel's other
            // namespace) does not hide the incoming one.
            let fresh = try after.acquire("vm", for: Self.nobody)
            let freshName = fresh.kernelName
            #expect(freshName == mineName)
            let back = try after.retrieve("vm", for: Self.nobody)
            let backName = back.kernelName
            #expect(backName == mineName)
            let session = try LiveUpdateSession.adopt(back.fd)
            let restored = try session.retrieve(token: 7)
            #expect(try FileIO.readAll(restored.borrowed) == Array("vm-state".utf8))
            try session.finish()
            // Handed over once: a second retrieve finds nothing.
            do throws(BrokerError) { _ = try after.retrieve("vm", for: Self.nobody); Issue.record("retrieved twice") } catch {
                #expect(error.name == .noSuchSession)
            }
        }
    }

    @Test func aForgedCarriedDocumentCannotReassignASession() throws {
        try withEmulator { emulator in
            let broker = Self.broker(emulator, policy: "allow uid=65534")
            let kernelName = SessionNames.brokered(uid: 65534, owner: Self.nobody.owner, name: "vm")
            let forged: JSONValue = .object(["version": .number(1), "sessions": .array([.object([
                "name": .string("vm"), "kernelName": .string(kernelName), "uid": .number(65534), "owner": .string(Self.other.owner),
            ])])])
            let problems = broker.adoptCarried(forged)
            #expect(problems.count == 1 && problems[0].contains("derived kernel name"))
            #expect(broker.list(for: nil).isEmpty)
            #expect(broker.adoptCarried(.object(["version": .number(9)])).count == 1)
        }
    }

    @Test func unclaimedSessionsAreReportedThenFinished() throws {
        try withEmulator { emulator in
            let policy = "allow uid=65534\nunclaimed-after 0\nunclaimed-action finish"
            let before = Self.broker(emulator, policy: policy)
            let held = try before.acquire("vm", for: Self.nobody)
            let memfd = try Memfd.create(name: "state", contents: Array("x".utf8))
            try LiveUpdateSession.adopt(held.fd).preserve(memfd.borrowed, token: 1)
            let state = before.carried()
            _ = try EmulatorControl.simulateKexec(socketPath: emulator.socketPath)
            let after = Self.broker(emulator, policy: policy)
            after.adoptCarried(state)
            #expect(after.summary.waiting == 1)
            let reported = after.sweepUnclaimed()
            #expect(reported.count == 1 && reported[0].contains("'vm'") && reported[0].contains("finished and released"))
            #expect(after.summary.waiting == 0)
            #expect(after.list(for: nil).first?["state"]?.string == "finished")
            #expect(after.statusReport()["sessions"]?.array?.first?["overdue"]?.bool == true)
            do throws(BrokerError) { _ = try after.retrieve("vm", for: Self.nobody); Issue.record("a finished session was handed out") } catch {
                #expect(error.name == .noSuchSession)
            }
        }
    }
}

extension BrokerTests {
    @Test func heldSessionsStayOpenThroughPreserveAndSnapshot() throws {
        try withEmulator { emulator in
            let broker = Self.broker(emulator, policy: "allow uid=65534")
            _ = try broker.acquire("vm", for: Self.nobody)
            let first = broker.reexecSnapshot().descriptors
            #expect(first.count == 1 && fcntl(first[0], F_GETFD) >= 0)
            let memfd = try Memfd.create(name: "m", contents: [1, 2, 3])
            _ = try broker.preserve("vm", token: 1, fd: memfd.borrowed, for: Self.nobody)
            let second = broker.reexecSnapshot().descriptors
            #expect(second == first && fcntl(second[0], F_GETFD) >= 0, "after preserve")
            let third = broker.reexecSnapshot().descriptors
            #expect(third == first && fcntl(third[0], F_GETFD) >= 0, "after a second snapshot")
        }
    }
}

extension BrokerTests {
    @Test func noSessionIsMadeOrDroppedWhileAnUpdateRuns() throws {
        try withEmulator { emulator in
            let broker = Self.broker(emulator, policy: "allow uid=65534")
            _ = try broker.acquire("kept", for: Self.nobody)
            broker.changesRefused = { "a live update is in progress (phase preserve)" }
            do throws(BrokerError) { _ = try broker.acquire("new", for: Self.nobody); Issue.record("created during an update") } catch {
                #expect(error.name == .unavailable && error.message.contains("phase preserve"))
            }
            do throws(BrokerError) { try broker.release("kept", for: Self.nobody); Issue.record("released during an update") } catch {
                #expect(error.name == .unavailable)
            }
            // Another fd to a session it already has is fine: nothing changes in the table.
            _ = try broker.acquire("kept", for: Self.nobody)
            #expect(broker.carried()["sessions"]?.array?.count == 1)
        }
    }

    @Test func luoSessionSettingKeepsValidNamesAndWarnsOfTheRest() {
        let (config, warnings) = ServiceConfig.interpret(UnitFile.parse("""
            [Service]
            ExecStart=/bin/true
            LUOSession=vm disk vm bad/name
            LUOSession=
            LUOSession=guest  ram
            """), unit: UnitName("vmm.service")!)
        #expect(config.luoSessions == ["guest", "ram"])
        #expect(warnings.count == 1 && warnings[0].contains("'vm' is listed twice") && warnings[0].contains("'bad/name'"))
    }
}
