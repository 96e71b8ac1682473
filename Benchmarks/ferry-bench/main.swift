// ferry-bench: figures for ferryd, each next to a baseline measured in the same run.
//
//   swift run -c release ferry-bench [--senders K] [--fds M] [--batches 1,16] [--runs R]
//
// 1. fd-store ingestion: K persistent senders, each with M memfds made beforehand, store them over
//    the notify socket at B fds per datagram; fds per second through ferryd next to a bare
//    recvmsg loop on an identical socket fed by the same senders, in the same run.
// 2. ferryd's resident memory with 1,000 units loaded, idle and while holding 10,000 fds.
// With --only-observability: what the metrics textfile and the update history cost per write.
import ArgumentParser
import FerryJSON
import FerryControl
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// ferry-bench's command line.
struct Options: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-bench",
        abstract: "Measure ferryd: fd-store ingestion, resident memory, and live-update phases, each next to a baseline.",
        discussion: """
            Builds a small C sender (Benchmarks/fdstore-sender.c, with libsystemd: needs libsystemd-dev and \
            gcc) and runs ferryd and ferryctl from the folder this program was built in \
            (swift build -c release --product ferry-bench --product ferryd --product ferryctl).
            """,
        version: "ferry-bench \(FerryVersion.current)")

    @Option(help: "Senders (services) that store fds at once.") var senders = 4
    @Option(help: "Memfds each sender stores.") var fds = 2500
    @Option(help: "Fds per datagram, comma-separated.") var batches = "1,16"
    @Option(help: "Runs per measurement (the median is reported).") var runs = 3
    @Flag(name: .customLong("no-live-update"), help: "Skip the live-update measurement.") var skipLiveUpdate = false
    @Flag(name: .customLong("no-ingestion"), help: "Skip the ingestion measurement.") var skipIngestion = false
    @Flag(name: .customLong("no-memory"), help: "Skip the resident-memory measurement.") var skipMemory = false
    @Flag(help: "Only what the metrics textfile and the update history cost per write.") var onlyObservability = false
    @Option(name: .customLong("live-update-fds"), help: "Stored fds per live-update run, comma-separated.")
    var liveUpdateFDs = "1000,10000"

    var liveUpdate: Bool { !skipLiveUpdate }
    var batchSizes: [Int] { batches.split(separator: ",").compactMap { Int($0) } }
    var liveUpdateSizes: [Int] { liveUpdateFDs.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard senders > 0, fds > 0, runs > 0 else { throw ValidationError("--senders, --fds and --runs must be positive") }
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ (1...253).contains($0) }) else {
            throw ValidationError("--batches takes numbers from 1 to 253, e.g. 1,16")
        }
        guard !liveUpdateSizes.isEmpty || skipLiveUpdate else { throw ValidationError("--live-update-fds takes numbers, e.g. 1000,10000") }
        // The bare loop and ferryd each hold every sender's fds at once: past the hard limit on open
        // files the senders die before they are ready, and the measurement would wait for ever.
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        if !skipIngestion && UInt64(senders * fds + 256) > UInt64(limit.rlim_max) {
            throw ValidationError("--senders \(senders) × --fds \(fds) = \(senders * fds) fds held at once, more than this machine's limit of \(limit.rlim_max) open files per process (RLIMIT_NOFILE, less 256 for the rest)")
        }
    }
}

let options = Options.parseOrExit()
// Lines appear as they are measured, also when stdout is a file.
func print(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}
ResourceLimits.raiseDescriptorLimit()
if options.onlyObservability {
    ObservabilityBench.measure()
    exit(0)
}
let work = makeTemporaryDirectory()
let sender = "\(work)/fdstore-sender"
if access("/usr/bin/cc", X_OK) != 0 || access("/usr/include/systemd/sd-daemon.h", R_OK) != 0 {
    printError("ferry-bench: building its sender needs gcc and libsystemd-dev: apt-get install gcc libsystemd-dev (or run Tests/setup.sh as root)")
    exit(1)
}
run(["/usr/bin/cc", "-O2", "-o", sender, sourceFolder() + "/fdstore-sender.c", "-lsystemd"])

func sourceFolder() -> String {
    var path = #filePath
    while !path.hasSuffix("/") { path.removeLast() }
    return path + ".."
}

func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/ferry-bench.XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

@discardableResult
func run(_ arguments: [String], environment: [String] = ["PATH=/usr/bin:/bin"], wait: Bool = true) -> pid_t {
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    guard posix_spawn(&pid, arguments[0], nil, nil, argv, envp) == 0 else { fatalError("cannot run \(arguments[0])") }
    if wait {
        var status: CInt = 0
        waitpid(pid, &status, 0)
        if status != 0 { fatalError("\(arguments.joined(separator: " ")) failed: \(status)") }
    }
    return pid
}

/// A program built next to this one (ferryd, ferryctl).
func siblingProgram(_ name: String) -> String {
    var binary = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &binary, binary.count)
    var path = String(decoding: binary[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while !path.hasSuffix("/") { path.removeLast() }
    return path + name
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// A ferryd with `services` units (bench0.service, …) that each run the sender.
final class Ferryd {
    let folder: String
    let pid: pid_t
    var control: String { "\(folder)/run/control" }

    convenience init(services: Int, fds: Int, extraArguments: [String] = [], stay: Bool = false) {
        self.init(services: services, fds: fds, type: stay ? "notify" : "simple",
                  arguments: "\(fds)\(stay ? " --stay" : "")", extraArguments: extraArguments)
    }

    /// Units running `sender ARGUMENTS`, each with room for `fds` stored fds.
    init(services: Int, fds: Int, type: String, arguments: String, extraArguments: [String] = []) {
        folder = makeTemporaryDirectory()
        mkdir("\(folder)/units", 0o755)
        for index in 0..<services {
            let unit = """
                [Service]
                Type=\(type)
                ExecStart=\(sender) \(arguments)
                FileDescriptorStoreMax=\(fds)
                FileDescriptorStorePreserve=yes
                NotifyAccess=all
                """
            let fd = open("\(folder)/units/bench\(index).service", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = unit.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        pid = run([siblingProgram("ferryd"), "--units", "\(folder)/units", "--runtime-dir", "\(folder)/run", "--log-level", "warning"]
                  + extraArguments, wait: false)
        while call("GetManager") == nil { usleep(10_000) }
    }

    func call(_ method: String, _ parameters: [String: JSONValue] = [:]) -> [String: JSONValue]? {
        guard var client = try? VarlinkClient(path: control),
            let reply = try? client.call(Varlink.Call(method: "io.ferry.Manager.\(method)", parameters: parameters)),
            reply.error == nil
        else { return nil }
        return reply.parameters
    }

    var storedFDs: Int { Int(call("GetManager")?["storedFDs"]?.number ?? 0) }

    var residentKiB: Int { status("VmRSS") }
    /// The peak resident size since start.
    var peakResidentKiB: Int { status("VmHWM") }

    /// A KiB figure from /proc/PID/status.
    func status(_ key: String) -> Int {
        let fd = open("/proc/\(pid)/status", O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = read(fd, &bytes, bytes.count)
        let text = String(decoding: bytes[0..<max(count, 0)], as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    /// Waits until no unit is starting or stopping (the senders passed their barriers).
    func settle(allowRunning: Bool = false) {
        while let units = call("ListUnits")?["units"]?.array,
            units.contains(where: { $0["active"]?.string != "inactive" && !(allowRunning && $0["active"]?.string == "active") })
        {
            usleep(5000)
        }
    }

    func stop(settling: Bool = true) {
        if settling { settle() }
        kill(pid, SIGTERM)
        var status: CInt = 0
        waitpid(pid, &status, 0)
    }
}

if !options.skipIngestion { IngestionBench.run(senders: options.senders, fdsPerSender: options.fds, batches: options.batchSizes, runs: options.runs) }
if !options.skipMemory { MemoryBench.run(units: 1000, fdsPerUnit: 10) }
if options.liveUpdate { LiveUpdateBench.run(sizes: options.liveUpdateSizes, units: 10) }
run(["/bin/rm", "-rf", work])
