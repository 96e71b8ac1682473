import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The command-line tools as an operator runs them.
@Suite struct CommandLineTests {
    @Test func standaloneEmulatorServesConformanceKexecStatusAndProbe() throws {
        let socket = "/tmp/ferry-cli-emulator-\(getpid()).sock"
        let emulator = try Child.spawn([ferryctlPath, "emulator", "serve", "--socket", socket, "--profile", "7.1"])
        defer {
            emulator.kill(SIGTERM)
            _ = emulator.wait()
        }
        for _ in 0..<200 where access(socket, F_OK) != 0 { usleep(10_000) }
        // The single-boot cases against a separate emulator process (the two-phase run, which
        // needs one process to hold the sessions across the kexec, is in ConformanceTableTests).
        let phase1 = try Child.spawn([ferryctlPath, "conformance", "--socket", socket, "--phase", "1"])
        #expect(phase1.wait() == 0, "\(phase1.output.suffix(1500))")
        #expect(phase1.output.contains("level 7.1"))
        let kexec = try Child.spawn([ferryctlPath, "emulator", "kexec", "--socket", socket])
        #expect(kexec.wait() == 0)
        #expect(kexec.output.contains("\"liveUpdateNumber\":1"))
        let status = try Child.spawn([ferryctlPath, "emulator", "status", "--socket", socket])
        #expect(status.wait() == 0)
        #expect(status.output.contains("\"profile\":\"7.1\""))
        let probe = try Child.spawn([ferryctlPath, "luo", "probe", "--socket", socket])
        #expect(probe.wait() == 0)
        #expect(probe.output.contains("level 7.1"))
        // The same as JSON, and the readiness check (no device opened) says the emulator answers.
        let probeJSON = try Child.spawn([ferryctlPath, "luo", "probe", "--socket", socket, "--json"])
        #expect(probeJSON.wait() == 0)
        #expect(JSONValue.parse(Array(probeJSON.output.utf8))?["level"]?.string == "7.1", "\(probeJSON.output)")
        let check = try Child.spawn([ferryctlPath, "luo", "check", "--socket", socket])
        #expect(check.wait() == 0)
        #expect(check.output.contains("live update  emulator at \(socket)") && check.output.contains("ready: yes"), "\(check.output)")
        let phaseJSON = try Child.spawn([ferryctlPath, "conformance", "--socket", socket, "--phase", "1", "--only",
                                         "device-second-open-ebusy", "--json"])
        _ = phaseJSON.wait()
        let results = JSONValue.parse(Array(phaseJSON.output.utf8))
        #expect(results?["level"]?.string == "7.1", "\(phaseJSON.output.suffix(500))")
        #expect(results?["results"]?.array != nil)
        let statusJSON = try Child.spawn([ferryctlPath, "emulator", "status", "--socket", socket, "--json"])
        #expect(statusJSON.wait() == 0)
        #expect(JSONValue.parse(Array(statusJSON.output.utf8))?.object != nil)
    }

    @Test func anEmulatorThatCannotListenSaysWhereAndWhy() throws {
        let text = try Child.spawn([ferryctlPath, "emulator", "serve", "--socket", "/nonexistent/dir/luo.sock"])
        #expect(text.wait() == 1)
        #expect(text.output.contains("the emulator cannot listen on /nonexistent/dir/luo.sock: bind: ENOENT"), "\(text.output)")
        let json = try Child.spawn([ferryctlPath, "emulator", "serve", "--socket", "/nonexistent/dir/luo.sock", "--json"])
        #expect(json.wait() == 1)
        #expect(JSONValue.parse(Array(json.output.utf8))?["error"]?["code"]?.string == "cannot-listen", "\(json.output)")
        let runtime = try Child.spawn([ferryctlPath, "conformance", "--emulated", "9.9", "--json"])
        #expect(runtime.wait() == 64)
        #expect(JSONValue.parse(Array(runtime.output.utf8))?["error"]?["code"]?.string == "usage", "\(runtime.output)")
    }

    @Test func aHostWithoutLUOSaysWhy() throws {
        // No emulator named: the kernel. This machine may or may not be ready; either way the check
        // answers without opening the device, and agrees with the library.
        let check = try Child.spawn([ferryctlPath, "luo", "check", "--json"])
        let status = check.wait()
        let readiness = LiveUpdateReadiness.check(KernelBackend())
        #expect(status == (readiness.ready ? 0 : 1))
        let answer = JSONValue.parse(Array(check.output.utf8))
        #expect(answer?["summary"]?.string == readiness.summary, "\(check.output)")
        #expect(answer?["ready"]?.bool == readiness.ready)
        let missing = try Child.spawn([ferryctlPath, "luo", "check", "--socket", "/nonexistent/ferry-luo.sock"])
        #expect(missing.wait() == 1)
        #expect(missing.output.contains("no LUO emulator answers at /nonexistent/ferry-luo.sock (ENOENT)"))
    }

    @Test(.needs(.utilLinux)) func anEmulatorOutOfDescriptorsAnswersENOMEMAndNeverHangs() throws {
        // The emulated kernel's memory is the emulator process: with 200 descriptors it can hold
        // fewer than 200 files, and the rest must fail like an allocation failure (ENOMEM).
        let socket = "/tmp/ferry-cli-small-emulator-\(getpid()).sock"
        let emulator = try Child.spawn(["/usr/bin/prlimit", "--nofile=200:200", ferryctlPath, "emulator", "serve",
                                        "--socket", socket, "--profile", "7.2"])
        defer {
            emulator.kill(SIGTERM)
            _ = emulator.wait()
        }
        for _ in 0..<200 where access(socket, F_OK) != 0 { usleep(10_000) }
        let device = try LiveUpdateDevice.open(EmulatorBackend(socketPath: socket))
        let session = try device.createSession(named: "crowded")
        var outcomes: [String: Int] = [:]
        for token in 1...300 {
            let memfd = try Memfd.create(name: "m\(token)")
            do throws(LiveUpdateError) {
                try session.preserve(memfd.borrowed, token: UInt64(token))
                outcomes["ok", default: 0] += 1
            } catch {
                outcomes[error.errno?.symbolicName ?? "other", default: 0] += 1
            }
        }
        #expect(outcomes["ok", default: 0] > 100, "\(outcomes)")
        #expect(outcomes["ENOMEM", default: 0] > 0, "\(outcomes)")
        #expect(Set(outcomes.keys).isSubset(of: ["ok", "ENOMEM"]), "\(outcomes)")
        // Still serving: the status request answers.
        #expect(try EmulatorControl.status(socketPath: socket).contains("crowded"))
    }

    @Test func demoVerifiesEveryByte() throws {
        let demo = try Child.spawn([ferryctlPath, "demo", "--size", "65536"])
        let status = demo.wait()
        let output = demo.output
        #expect(status == 0, "\(output)")
        #expect(output.contains("demo-cache.service: verified 65536 bytes"))
        #expect(output.contains("demo-vmm.service: verified 65536 bytes"))
        #expect(output.contains("first service ready"))
        #expect(output.contains("demo: verified: every byte came back"))
        let json = try Child.spawn([ferryctlPath, "demo", "--size", "4096", "--json"])
        #expect(json.wait() == 0)
        let summary = JSONValue.parse(Array(json.output.utf8))
        #expect(summary?["verified"]?.bool == true, "\(json.output)")
        #expect(summary?["units"]?["demo-cache.service"]?.string == "verified 4096 bytes")
    }
}
