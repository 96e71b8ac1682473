import FerrySystem
import FerryTestSupport
import LiveUpdate
import LiveUpdateEmulator
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The LiveUpdate library's API, end to end through the emulator backend.
@Suite struct LibraryTests {
    @Test func storeAcrossKexecAndBack() throws {
        try withEmulator { host in
            let contents = Array("guest memory".utf8)
            do {
                let device = try LiveUpdateDevice.open(host.backend)
                let session = try device.createSession(named: "vmm-1")
                let memfd = try Memfd.create(name: "ram", contents: contents)
                try session.preserve(memfd.borrowed, token: 7)
                #expect(try session.kernelName() == "vmm-1")
                _ = try EmulatorControl.simulateKexec(socketPath: host.socketPath)
            }
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.retrieveSession(named: "vmm-1")
            #expect(session.direction == .incoming)
            let restored = try session.retrieve(token: 7)
            #expect(try FileIO.readAll(restored.borrowed) == contents)
            #expect(restored.borrowed.isCloseOnExec)
            try session.finish()
        }
    }

    @Test func namesAreCheckedBeforeTheIoctl() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            for bad in ["", String(repeating: "x", count: 64), "nul\u{0}inside"] {
                do throws(LiveUpdateError) {
                    _ = try device.createSession(named: bad)
                    Issue.record("accepted '\(bad)'")
                } catch {
                    #expect(error.kind == .invalidSessionName)
                }
            }
            _ = try device.createSession(named: String(repeating: "y", count: 63))
        }
    }

    @Test func errorsCarryOperationSessionAndToken() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "errors")
            let memfd = try Memfd.create(name: "m")
            try session.preserve(memfd.borrowed, token: 3)
            do throws(LiveUpdateError) {
                try session.preserve(memfd.borrowed, token: 3)
                Issue.record("preserved a token twice")
            } catch {
                #expect(error.errno == .fileExists)
                #expect(error.session == "errors")
                #expect(error.token == 3)
                #expect(error.description.contains("LIVEUPDATE_SESSION_PRESERVE_FD"))
            }
        }
    }

    @Test func secondAgentIsToldWhoHoldsTheDevice() throws {
        try withEmulator { host in
            let first = try LiveUpdateDevice.open(host.backend)
            _ = first
            do throws(LiveUpdateError) {
                _ = try LiveUpdateDevice.open(host.backend)
                Issue.record("second open succeeded")
            } catch {
                #expect(error.kind == .anotherAgentHoldsDevice)
                #expect(error.description.contains("another live update agent holds /dev/liveupdate"))
            }
        }
    }

    @Test func noEmulatorIsUnavailable() {
        do throws(LiveUpdateError) {
            _ = try LiveUpdateDevice.open(EmulatorBackend(socketPath: "/tmp/ferry-no-emulator-here.sock"))
            Issue.record("opened a device with no emulator")
        } catch {
            guard case .unavailable(.emulatorNotRunning) = error.kind else {
                Issue.record("unexpected \(error)")
                return
            }
        }
    }

    @Test func adoptedSessionFindsItsBackendAndName() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "inherited")
            // As a service would get it: a bare fd number, e.g. from LISTEN_FDS.
            let copy = try session.descriptor.duplicate()
            let adopted = try LiveUpdateSession.adopt(copy)
            #expect(adopted.name == "inherited")
            let memfd = try Memfd.create(name: "m")
            try adopted.preserve(memfd.borrowed, token: 1)
            let memfd2 = try Memfd.create(name: "not-a-session")
            do throws(LiveUpdateError) {
                _ = try LiveUpdateSession.adopt(memfd2)
                Issue.record("adopted a memfd")
            } catch {
                #expect(error.kind == .notASession)
            }
        }
    }

    @Test(arguments: BehaviourLevel.allCases)
    func probeFindsTheLevel(level: BehaviourLevel) throws {
        try withEmulator(level) { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let finding = try BehaviourProbe.probe(device, release: level.rawValue + ".0")
            #expect(finding.level == level)
            #expect(finding.getNameAvailable == (level >= .v7_2))
            #expect(finding.emptyNameRefused == (level >= .v7_2))
            // The probe leaves nothing behind.
            let status = try EmulatorControl.status(socketPath: host.socketPath)
            #expect(status.contains("\"sessions\":[]"))
        }
    }
}
