import CFerry
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

/// The emulator must survive anything a client sends or does, without harming other sessions.
@Suite struct EmulatorRobustnessTests {
    /// A session of our own that must keep working through whatever the test throws at the emulator.
    private func assertHealthy(_ host: EmulatorHost, _ session: borrowing LiveUpdateSession, token: UInt64) throws {
        let memfd = try Memfd.create(name: "health")
        try session.preserve(memfd.borrowed, token: token)
    }

    @Test func malformedPacketsAreDropped() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "bystander")
            let victim = try device.createSession(named: "target")
            var generator = SystemRandomNumberGenerator()
            for round in 0..<300 {
                let length = Int.random(in: 0...200, using: &generator)
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if round % 3 == 0, bytes.count >= 4 { bytes[0...3] = [0x31, 0x4C, 0x55, 0x46] }  // valid magic
                let extra = try Memfd.create(name: "junk")
                let attach: [CInt] = round % 2 == 0 ? [extra.rawValue] : []
                try? UnixSocket.send(victim.descriptor.borrowed, bytes, descriptors: attach, nonBlocking: true)
            }
            // Control connections too.
            for _ in 0..<50 {
                let connection = try UnixSocket.connect(path: host.socketPath, kind: .sequentialPacket)
                try? UnixSocket.send(connection.borrowed, [1, 2, 3, 4, 5])
            }
            try assertHealthy(host, session, token: 1)
            let status = try EmulatorControl.status(socketPath: host.socketPath)
            #expect(status.contains("bystander"))
        }
    }

    @Test func requestWithoutReplySocketIsDropped() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "noreply")
            let request = EmulatorWire.Request(kind: .ioctl, request: 0xBA42, argument: [8, 0, 0, 0, 0, 0, 0, 0])
            try UnixSocket.send(session.descriptor.borrowed, request.encoded())
            try assertHealthy(host, session, token: 1)
        }
    }

    @Test func dyingClientsLoseOnlyTheirOwnSessions() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let bystander = try device.createSession(named: "bystander")
            try assertHealthy(host, bystander, token: 100)
            _ = consume device  // the children need the device
            for round in 0..<6 {
                let child = try Child.spawn([ferryctlPath, "conformance", "--socket", host.socketPath, "--phase", "1",
                                             "--only", "kexec-prepare"])
                usleep(UInt32(round) * 40_000)
                child.kill()
                _ = child.wait()
            }
            // Every session of the killed children is gone; ours is intact and still works.
            // (Sessions only: the status's call log still names the ones that were closed.)
            let status = try EmulatorControl.status(socketPath: host.socketPath)
            let names = (JSONValue.parse(Array(status.utf8))?["sessions"]?.array ?? []).compactMap { $0["name"]?.string }
            #expect(!names.contains { $0.hasPrefix("ferry-conformance") }, "\(names)")
            #expect(names.contains("bystander"))
            try assertHealthy(host, bystander, token: 101)
            _ = try LiveUpdateDevice.open(host.backend)
        }
    }

    @Test func aSessionSharedWithAChildSurvivesTheParentClosingIt() throws {
        // Sessions are ordinary fds: the emulator drops one only when its last reference closes.
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "shared")
            let copy = try session.descriptor.duplicate()
            _ = consume session
            let status = try EmulatorControl.status(socketPath: host.socketPath)
            #expect(status.contains("\"name\":\"shared\""))
            _ = consume copy
            // Other tests spawn children at the same time, and a child holds a copy of every fd of
            // this process between its fork and its exec: the last close may come a moment later.
            var after = try EmulatorControl.status(socketPath: host.socketPath)
            let deadline = MonotonicClock.now() + .seconds(5)
            while after.contains("\"name\":\"shared\"") && MonotonicClock.now() < deadline {
                usleep(10_000)
                after = try EmulatorControl.status(socketPath: host.socketPath)
            }
            #expect(!after.contains("\"name\":\"shared\""))
        }
    }

    @Test func sizeChangesAreReportedAtKexec() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "grower")
            let memfd = try Memfd.create(name: "m", contents: [UInt8](repeating: 1, count: 100))
            try session.preserve(memfd.borrowed, token: 1)
            try FileIO.truncate(memfd.borrowed, to: 5000)  // the kernel would refuse this with EPERM
            let report = try EmulatorControl.simulateKexec(socketPath: host.socketPath)
            #expect(report.contains("size changed from 100 to 5000"))
            _ = consume session
            let next = try LiveUpdateDevice.open(host.backend)
            let restored = try next.retrieveSession(named: "grower").retrieve(token: 1)
            #expect(try FileIO.size(of: restored.borrowed) == 100)
        }
    }

    @Test func incompatibleHandOverFailsOpenWithEIO() throws {
        try withEmulator { host in
            _ = try EmulatorControl.simulateKexec(socketPath: host.socketPath, options: "incompatible")
            do throws(LiveUpdateError) {
                _ = try LiveUpdateDevice.open(host.backend)
                Issue.record("open succeeded after an incompatible hand-over")
            } catch {
                #expect(error.errno == .ioError)
            }
        }
    }

    @Test func oldSessionFdsAreDeadAfterKexec() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            let session = try device.createSession(named: "stale")
            _ = try EmulatorControl.simulateKexec(socketPath: host.socketPath)
            let memfd = try Memfd.create(name: "m")
            do throws(LiveUpdateError) {
                try session.preserve(memfd.borrowed, token: 1)
                Issue.record("a session from the previous boot still worked")
            } catch {
                #expect(error.errno == .ioError || error.errno == .brokenPipe || error.errno == .connectionReset)
            }
        }
    }

    @Test func noDescriptorLeaks() throws {
        // In a process of its own: other tests run in parallel in this one.
        let child = try Child.spawn([ferryctlPath, "conformance", "--emulated", "all", "--check-leaks"])
        let status = child.wait()
        let output = child.output
        #expect(status == 0, "\(output.suffix(2000))")
        #expect(output.contains("descriptors:"))
    }

    @Test func anotherProcessSeesEBUSY() throws {
        try withEmulator { host in
            let device = try LiveUpdateDevice.open(host.backend)
            _ = device
            let child = try Child.spawn([ferryctlPath, "luo", "probe", "--socket", host.socketPath])
            #expect(child.wait() == 3)
            #expect(child.output.contains("another live update agent holds /dev/liveupdate"))
        }
    }
}
