// ferry-bench: figures for ferryd, each next to a baseline measured in the same run.
//
//   swift run -c release ferry-bench [--services K] [--fds M] [--runs R]
//
// 1. fd-store ingestion: K services each store M memfds over the notify socket; fds per second
//    through ferryd next to a bare recvmsg loop on the same kind of socket fed by the same sender.
// 2. ferryd's resident memory idle and while holding 10,000 fds.
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

    @Option(help: "Services that store fds at once.") var services = 10
    @Option(help: "Memfds each service stores.") var fds = 200
    @Option(help: "Runs per measurement (the median is reported).") var runs = 3
    @Flag(name: .customLong("no-live-update"), help: "Skip the live-update measurement.") var skipLiveUpdate = false
    @Flag(help: "Only what the metrics textfile and the update history cost per write.") var onlyObservability = false
    @Option(name: .customLong("live-update-fds"), help: "Stored fds per live-update run, comma-separated.")
    var liveUpdateFDs = "1000,10000"

    var liveUpdate: Bool { !skipLiveUpdate }
    var liveUpdateSizes: [Int] { liveUpdateFDs.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard services > 0, fds > 0, runs > 0 else { throw ValidationError("--services, --fds and --runs must be positive") }
        guard !liveUpdateSizes.isEmpty || skipLiveUpdate else { throw ValidationError("--live-update-fds takes numbers, e.g. 1000,10000") }
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

/// The baseline: a bare recvmsg loop that receives and closes every fd.
func bareRate(services: Int, fds: Int) -> Double {
    let path = "\(work)/bare.sock"
    let socket = try! UnixSocket.listen(path: path, kind: .datagram)
    try! UnixSocket.enablePassCredentials(socket.borrowed)
    var size: CInt = 8 << 20
    setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
    let start = MonotonicClock.now()
    var children: [pid_t] = []
    for _ in 0..<services {
        children.append(run([sender, "\(fds)"], environment: ["NOTIFY_SOCKET=\(path)"], wait: false))
    }
    var received = 0
    while received < services * fds {
        guard let message = try? UnixSocket.receive(socket.borrowed, maximumBytes: 4096, maximumDescriptors: 253,
                                                     credentials: true) else { continue }
        // The message goes away at the end of this iteration and closes its fds, as a receiver must.
        if message.bytes.starts(with: Array("FDSTORE=1".utf8)) { received += message.descriptors.count }
        _ = message.descriptors.rawValues.count
    }
    let elapsed = MonotonicClock.now() - start
    // Closing the socket drops barrier fds still queued, which releases the senders.
    _ = consume socket
    for child in children { var status: CInt = 0; waitpid(child, &status, 0) }
    return Double(services * fds) / seconds(elapsed)
}

/// A ferryd with `services` units that each run the sender.
final class Ferryd {
    let folder: String
    let pid: pid_t
    var control: String { "\(folder)/run/control" }

    init(services: Int, fds: Int, extraArguments: [String] = [], stay: Bool = false) {
        folder = makeTemporaryDirectory()
        mkdir("\(folder)/units", 0o755)
        for index in 0..<services {
            let unit = """
                [Service]
                Type=\(stay ? "notify" : "simple")
                ExecStart=\(sender) \(fds)\(stay ? " --stay" : "")
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

    var residentKiB: Int {
        let fd = open("/proc/\(pid)/status", O_RDONLY)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = read(fd, &bytes, bytes.count)
        let text = String(decoding: bytes[0..<max(count, 0)], as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
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

func ferrydRate(services: Int, fds: Int) -> Double {
    let ferryd = Ferryd(services: services, fds: fds)
    defer { ferryd.stop() }
    let start = MonotonicClock.now()
    for index in 0..<services { _ = ferryd.call("StartUnit", ["name": .string("bench\(index).service")]) }
    while ferryd.storedFDs < services * fds { usleep(1000) }
    return Double(services * fds) / seconds(MonotonicClock.now() - start)
}

print("ferry-bench: \(options.services) services × \(options.fds) memfds, \(options.runs) runs (median)")
var bare: [Double] = []
var through: [Double] = []
for _ in 0..<options.runs {
    bare.append(bareRate(services: options.services, fds: options.fds))
    through.append(ferrydRate(services: options.services, fds: options.fds))
}
let bareMedian = median(bare)
let ferrydMedian = median(through)
print("| measurement | fds/s (median) | runs |")
print("|---|---|---|")
print("| bare recvmsg loop (baseline) | \(Int(bareMedian)) | \(bare.map { String(Int($0)) }.joined(separator: ", ")) |")
print("| ferryd fd-store ingestion | \(Int(ferrydMedian)) | \(through.map { String(Int($0)) }.joined(separator: ", ")) |")
print("ratio ferryd / bare: \(Double(Int(ferrydMedian / bareMedian * 1000)) / 1000)")

let memory = Ferryd(services: 10, fds: 1000)
usleep(200_000)
let idle = memory.residentKiB
for index in 0..<10 { _ = memory.call("StartUnit", ["name": .string("bench\(index).service")]) }
while memory.storedFDs < 10_000 { usleep(5000) }
usleep(200_000)
let holding = memory.residentKiB
memory.stop()
print("| ferryd resident memory | KiB |")
print("|---|---|")
print("| idle (10 units loaded) | \(idle) |")
print("| holding 10,000 fds | \(holding) |")
print("per stored fd: \(Double((holding - idle) * 1024) / 10_000) bytes")
if options.liveUpdate { LiveUpdateBench.run(sizes: options.liveUpdateSizes, units: 10) }
run(["/bin/rm", "-rf", work])
