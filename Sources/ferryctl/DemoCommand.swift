import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateEmulator
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl demo`: Ferry's main job end to end, on any machine. In a temporary folder it starts
/// the LUO emulator and ferryd with two example services, rehearses a live update, checks every
/// byte came back, and prints the timing of each phase. The exit status says whether it verified.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Rehearse a live update with example services and verify every byte.")

    @Option(help: "Bytes of state per example service.") var size: Int = 4 << 20
    @Option(help: "Emulated behaviour level.") var profile: String = "7.2"
    @Flag(help: "Keep the temporary folder (units, logs).") var keep = false
    @Flag(help: "Print one JSON object at the end instead of the steps.") var json = false

    /// Text output, silenced by --json.
    private func say(_ text: String) { if !json { print(text) } }

    func run() throws {
        guard let level = BehaviourLevel(rawValue: profile) else { throw ValidationError("unknown profile \(profile)") }
        ResourceLimits.raiseDescriptorLimit()
        let folder = makeTemporaryFolder()
        defer { if !keep { removeTree(folder) } }
        say("ferry demo in \(folder)")

        var logger = Logger(label: "ferry.luo-emulator")
        logger.logLevel = .warning
        let emulatorPath = "\(folder)/luo-emulator.sock"
        let emulator = try EmulatorHost(socketPath: emulatorPath, profile: EmulatorProfile(level), logger: logger)
        defer { emulator.stop() }
        say("  LUO emulator (profile \(profile)) at \(emulatorPath)")

        let me = selfPath()
        mkdir("\(folder)/units", 0o755)
        writeFile("\(folder)/units/demo-cache.service", """
            [Unit]
            Description=keeps its cache in a memfd in the fd store
            [Service]
            Type=notify
            ExecStart=\(me) demo-service cache --size \(size) --seed 11
            FileDescriptorStoreMax=4
            FileDescriptorStorePreserve=yes
            """)
        writeFile("\(folder)/units/demo-vmm.service", """
            [Unit]
            Description=owns a LUO session with its guest memory, like a VM monitor
            [Service]
            Type=notify
            ExecStart=\(me) demo-service vmm --size \(size) --seed 23
            FileDescriptorStoreMax=4
            FileDescriptorStorePreserve=yes
            """)
        let ferrydPath = String(me.dropLast("ferryctl".count)) + "ferryd"
        let log = "\(folder)/ferryd.log"
        let ferryd = try spawn([ferrydPath, "--units", "\(folder)/units", "--runtime-dir", "\(folder)/run",
                                "--liveupdate-emulator", emulatorPath], output: log)
        defer {
            kill(ferryd, SIGTERM)
            var status: CInt = 0
            waitpid(ferryd, &status, 0)
        }
        let control = "\(folder)/run/control"
        guard waitFor({ call(control, "GetManager") != nil }) else { throw failure("ferryd did not start; see \(log)") }
        say("  ferryd started (pid \(ferryd))")

        for unit in ["demo-cache.service", "demo-vmm.service"] {
            guard let reply = call(control, "StartUnit", ["name": .string(unit)]), reply.error == nil else {
                throw failure("\(unit) did not start; see \(log)")
            }
            say("  \(unit): \(status(control, unit))")
        }

        say("  rehearsing the live update (simulated kexec; every service killed; ferryd restarted)")
        let outcome = try LiveUpdateClient.run(control: control, ["rehearse": .bool(true)])
        guard outcome.succeeded, let restore = outcome.restore else {
            say(outcome.text)
            throw failure("the rehearsal failed; see \(log)")
        }
        var verified = true
        var results: [String: JSONValue] = [:]
        for unit in ["demo-cache.service", "demo-vmm.service"] {
            _ = waitFor { status(control, unit).hasPrefix("verified") || status(control, unit).hasPrefix("MISMATCH") }
            let text = status(control, unit)
            say("  \(unit): \(text)")
            results[unit] = .string(text)
            verified = verified && text == "verified \(size) bytes"
        }
        say(LiveUpdateClient.timingTable(restore.timings))
        say("kexec count \(restore.kexecCount); restored \(restore.restored.count) fd store entr\(restore.restored.count == 1 ? "y" : "ies")")
        if json {
            print(JSONValue.object([
                "verified": .bool(verified), "folder": .string(folder), "units": .object(results),
                "restore": JSONValue.from(restore),
            ]).encodedString())
        }
        guard verified else { throw failure("some bytes did not come back") }
        say("demo: verified: every byte came back")
    }

    private func failure(_ text: String) -> Failure {
        Failure(code: "demo-failed", message: "demo: \(text)",
                hint: keep ? nil : "run it again with --keep to keep the folder with ferryd's log and the units")
    }

    private func status(_ control: String, _ unit: String) -> String {
        call(control, "GetUnit", ["name": .string(unit)])?.parameters["unit"]?["status"]?.string ?? "-"
    }

    private func call(_ control: String, _ method: String, _ parameters: [String: JSONValue] = [:]) -> Varlink.Reply? {
        guard var client = try? VarlinkClient(path: control) else { return nil }
        return try? client.call(Varlink.Call(method: "io.ferry.Manager.\(method)", parameters: parameters))
    }

    private func waitFor(seconds: Int = 30, _ condition: () -> Bool) -> Bool {
        let deadline = MonotonicClock.now() + .seconds(Int64(seconds))
        while MonotonicClock.now() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return false
    }
}

func selfPath() -> String {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count)
    return String(decoding: buffer[0..<max(count, 0)], as: UTF8.self)
}

func makeTemporaryFolder() -> String {
    var template = Array("/tmp/ferry-demo.XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

func writeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return }
    let owned = OwnedFD(adopting: fd)
    try? FileIO.writeAll(owned.borrowed, Array(text.utf8))
}

func removeTree(_ path: String) {
    _ = try? spawn(["/bin/rm", "-rf", path], output: "/dev/null", wait: true)
}

/// Starts `arguments` with Ferry's own spawner, stdout and stderr appended to `output`.
@discardableResult
func spawn(_ arguments: [String], output: String, wait: Bool = false) throws -> pid_t {
    let log = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard log >= 0 else { throw SystemCallError("open(\(output))", Errno(rawValue: errno)) }
    let owned = OwnedFD(adopting: log)
    var environment: [String] = []
    var index = 0
    while let entry = environ[index] {
        environment.append(String(cString: entry))
        index += 1
    }
    let pid = try Spawner.spawn(SpawnRequest(path: arguments[0], arguments: arguments, environment: environment,
                                             standardIO: [-1, owned.rawValue, owned.rawValue]))
    if wait {
        var status: CInt = 0
        waitpid(pid, &status, 0)
    }
    return pid
}
