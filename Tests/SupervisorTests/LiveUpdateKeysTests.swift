import FDStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Supervisor
@testable import ServiceKit

/// Ferry's `X-Ferry…` keys: the prepare barrier's settings and ordered fd groups.
@Suite struct LiveUpdateKeysTests {
    static func interpret(_ lines: String) -> (ServiceConfig, [String]) {
        ServiceConfig.interpret(UnitFile.parse("[Service]\nExecStart=/bin/true\n" + lines), unit: UnitName("vm.service")!)
    }

    @Test func prepareBarrierSettingsAndDefaults() {
        let (plain, _) = Self.interpret("")
        #expect(plain.prepareBarrier.enabled == false)
        #expect(plain.notifyAccess == .none)
        let (config, warnings) = Self.interpret("""
            X-FerryPrepare=yes
            X-FerryPrepareSignal=SIGUSR2
            X-FerryResumeSignal=RTMIN+7
            X-FerryPrepareTimeoutSec=1min 30s
            """)
        #expect(warnings == [])
        #expect(config.prepareBarrier.enabled)
        #expect(config.prepareBarrier.prepareSignal.number == SIGUSR2)
        #expect(config.prepareBarrier.resumeSignal.number == __libc_current_sigrtmin() + 7)
        #expect(config.prepareBarrier.timeout == .seconds(90))
        // Opting in lets a Type=simple unit answer on the notify socket.
        #expect(config.notifyAccess == .main)
        // The defaults are ServiceKit's.
        #expect(PrepareBarrierConfig().prepareSignal.number == LiveUpdatePreparation.prepareSignal)
        #expect(PrepareBarrierConfig().resumeSignal.number == LiveUpdatePreparation.resumeSignal)
        #expect(PrepareBarrierConfig().timeout == .seconds(10))
    }

    @Test(arguments: [("SIGRTMIN+4", "SIGRTMIN+4"), ("rtmin", "SIGRTMIN"), ("USR1", "SIGUSR1"), ("10", "SIGUSR1"), ("sigterm", "SIGTERM")])
    func signalNames(_ text: String, _ shown: String) throws {
        #expect(try #require(SignalName(text)).description == shown)
    }

    @Test func badValuesAreWarningsAndKeepTheDefaults() {
        let (config, warnings) = Self.interpret("""
            X-FerryPrepare=maybe
            X-FerryPrepareSignal=SIGRTMIN+999
            X-FerryResumeSignal=SIGFOO
            X-FerryPrepareTimeoutSec=0
            X-FerryFDGroup=lonely
            X-FerryFDGroup=bad:name mem
            X-FerryUnknown=1
            """)
        #expect(warnings.count == 7, "\(warnings)")
        #expect(warnings.last?.contains("unknown Ferry setting X-FerryUnknown=") == true)
        #expect(warnings.allSatisfy { $0.hasPrefix("line ") })
        #expect(config.prepareBarrier == PrepareBarrierConfig())
        #expect(config.fdGroups.isEmpty)
    }

    @Test func groupsMatchTheFirstGroupAndPattern() {
        let (config, warnings) = Self.interpret("""
            X-FerryFDGroup=vm0 mem-* iommufd vfio
            X-FerryFDGroup=vm1 vm1-* mem-9
            """)
        #expect(warnings == [])
        #expect(config.fdGroups.map(\.name) == ["vm0", "vm1"])
        #expect(config.fdGroup(of: "mem-3")?.group.name == "vm0")
        #expect(config.fdGroup(of: "mem-9")?.group.name == "vm0")
        #expect(config.fdGroup(of: "vfio")?.position == 2)
        #expect(config.fdGroup(of: "vm1-iommufd")?.group.name == "vm1")
        #expect(config.fdGroup(of: "other") == nil)
        // Declared again: the later line wins; empty: every group goes.
        let (again, warned) = Self.interpret("X-FerryFDGroup=vm0 a\nX-FerryFDGroup=vm0 b c\n")
        #expect(again.fdGroups == [FDGroup(name: "vm0", patterns: ["b", "c"])])
        #expect(warned.count == 1)
        let (cleared, _) = Self.interpret("X-FerryFDGroup=vm0 a\nX-FerryFDGroup=\n")
        #expect(cleared.fdGroups.isEmpty)
    }

    @Test(arguments: [
        ("X_FERRY_PREPARED=1", PrepareAnswer.prepared),
        ("STATUS=flushed\nX_FERRY_PREPARED=1", .prepared),
        ("X_FERRY_REFUSED=guest migrating", .refused("guest migrating")),
        ("X_FERRY_REFUSED=", .refused("no reason given")),
        ("X_FERRY_PREPARED=1\nX_FERRY_REFUSED=changed my mind", .refused("changed my mind")),
    ])
    func prepareAnswersInNotifyMessages(_ text: String, _ answer: PrepareAnswer) throws {
        let message = try NotifyMessage.parse(Array(text.utf8)).get()
        #expect(message.prepareAnswer == answer)
    }

    @Test func otherMessagesCarryNoAnswer() throws {
        #expect(try NotifyMessage.parse(Array("X_FERRY_PREPARED=0\nREADY=1".utf8)).get().prepareAnswer == nil)
    }
}
