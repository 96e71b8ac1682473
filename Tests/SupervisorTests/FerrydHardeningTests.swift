import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an unlucky operator or a hostile unit must not be able to do (issue: hardening).
@Suite struct FerrydHardeningTests {
    @Test(.needs(.pythonSystemd)) func aRealKexecOnTheEmulatorIsRefused() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            ferryd.writeUnit("up.service", toolUnit("ready sleep"))
            _ = try ferryd.start("up.service")
            let reply = try ferryd.call("Kexec")
            #expect(reply.error == "io.ferry.Manager.LiveUpdateFailed")
            #expect(reply.parameters["report"]?["failure"]?.string?.contains("rehearse instead") == true)
            #expect(try ferryd.state("up.service") == "active (running)")
        }
    }

    @Test func mistypedParametersAreRefusedNotDefaulted() throws {
        let ferryd = try FerrydInstance(units: [:])
        let kexec = try ferryd.call("Kexec", ["rehearse": .string("yes")])
        #expect(kexec.error == "org.varlink.service.InvalidParameter")
        #expect(kexec.parameters["parameter"]?.string == "rehearse")
        let typo = try ferryd.call("Kexec", ["rehears": .bool(true)])
        #expect(typo.parameters["parameter"]?.string == "rehears")
        #expect(try ferryd.call("GetUnitLogs", ["name": .string("x.service"), "lines": .string("5")]).error == "org.varlink.service.InvalidParameter")
    }

    @Test(.needs(.pythonSystemd)) func stoppingWithoutExitingIsKilledAtTheStopTimeout() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("lingering.service", toolUnit("ready ignoreterm notify STOPPING=1 sleep", extra: "TimeoutStopSec=300ms"))
        _ = try ferryd.start("lingering.service")
        #expect(ferryd.waitUntil { try ferryd.state("lingering.service") == "failed (failed)" }, "\(ferryd.log)")
        #expect(try ferryd.unit("lingering.service")["result"]?.string == "timeout")
    }

    @Test(.needs(.pythonSystemd)) func reloadingWithoutReadyEnds() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("reload.service", toolUnit("ready notify RELOADING=1 sleep", extra: "TimeoutStartSec=300ms"))
        _ = try ferryd.start("reload.service")
        #expect(ferryd.waitUntil { ferryd.log.contains("reload.service: sent RELOADING=1 but no READY=1") })
        #expect(try ferryd.state("reload.service") == "active (running)")
    }

    @Test func aFIFOOrADeviceNamedLikeAUnitDoesNotStallReload() throws {
        let ferryd = try FerrydInstance(units: [:])
        #expect(mkfifo("\(ferryd.units)/fifo.service", 0o644) == 0)
        #expect(symlink("/dev/zero", "\(ferryd.units)/zero.service") == 0)
        ferryd.directory.write("units/huge.service", "[Service]\nExecStart=/bin/true\n" + String(repeating: "# padding\n", count: 120_000))
        #expect(try ferryd.call("Reload").error == nil)
        #expect(ferryd.log.contains("fifo.service: not a regular file"))
        #expect(ferryd.log.contains("zero.service: not a regular file"))
        #expect(ferryd.log.contains("huge.service: 1200030 bytes, larger than 1048576, ignored"))
        let fifo = try ferryd.call("GetUnit", ["name": .string("fifo.service")])
        #expect(fifo.error == "io.ferry.Manager.NoSuchUnit", "\(fifo)")
    }

    @Test func readsCreateNoUnits() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("worker@.service", "[Service]\nExecStart=/bin/true\n")
        for index in 0..<300 {
            #expect(try ferryd.call("GetUnit", ["name": .string("worker@\(index).service")]).error == nil)
        }
        #expect(try ferryd.call("GetManager").parameters["units"]?.number == 0)
    }

    @Test(.needs(.pythonSystemd)) func statusTextCannotDriveATerminal() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("loud.service", toolUnit("status \u{1B}]0;owned\u{07}\u{1B}[2Jdone ready sleep"))
        _ = try ferryd.start("loud.service")
        #expect(try ferryd.unit("loud.service")["status"]?.string == "\\x1b]0;owned\\x07\\x1b[2Jdone")
    }
}
