import FerryControl
import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A temporary folder, removed with everything in it when the value goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "ferry-test") {
        var template = Array("/tmp/\(label).XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit {
        let child = try? Child.spawn(["/bin/rm", "-rf", path])
        _ = child?.wait()
    }

    public func write(_ relative: String, _ text: String, mode: mode_t = 0o644) {
        let full = "\(path)/\(relative)"
        var folder = full
        while !folder.hasSuffix("/") { folder.removeLast() }
        _ = try? Child.spawn(["/bin/mkdir", "-p", folder]).wait()
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        precondition(fd >= 0, "cannot write \(full)")
        let owned = OwnedFD(adopting: fd)
        try? FileIO.writeAll(owned.borrowed, Array(text.utf8))
        fchmod(fd, mode)
    }
}

/// A ferryd process under test, with its own unit folder and sockets.
public final class FerrydInstance: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let child: Child
    public var units: String { "\(directory.path)/units" }
    public var control: String { "\(directory.path)/run/control" }
    public var notify: String { "\(directory.path)/run/notify" }
    /// The update history's folder and the metrics file: per instance, never the host's.
    public var stateDirectory: String { "\(directory.path)/state" }
    public var metricsFile: String { "\(directory.path)/metrics/ferry.prom" }

    /// Writes `units` (name → text) and starts ferryd on them; returns once it answers.
    public convenience init(units files: [String: String], extraArguments: [String] = [], launcher: [String] = [],
                            environment: [String] = [], executable: String = ferrydPath, outputPath: String? = nil) throws {
        let directory = TemporaryDirectory("ferryd-test")
        for (name, text) in files { directory.write("units/\(name)", text) }
        directory.write("units/.keep", "")
        // Other users reach the control socket (reads are open to all) and write test reports here.
        chmod(directory.path, 0o755)
        directory.write("shared/.keep", "")
        chmod("\(directory.path)/shared", 0o1777)
        try self.init(in: directory, extraArguments: extraArguments, launcher: launcher, environment: environment,
                      executable: executable, outputPath: outputPath)
    }

    /// A fresh ferryd on the folders (units, runtime, state) of `previous`, which must be gone: as
    /// when whoever supervises ferryd starts it again after a crash. Returns once it answers.
    ///
    /// - Parameter awaitingAnswer: false for a ferryd expected to die before it answers.
    public convenience init(restartingAfter previous: FerrydInstance, extraArguments: [String] = [],
                            environment: [String] = [], awaitingAnswer: Bool = true) throws {
        try self.init(in: previous.directory, extraArguments: extraArguments, environment: environment,
                      awaitingAnswer: awaitingAnswer)
    }

    /// Starts ferryd on the folders in `directory`; returns once it answers.
    public init(in directory: TemporaryDirectory, extraArguments: [String] = [], launcher: [String] = [],
                environment: [String] = [], executable: String = ferrydPath, outputPath: String? = nil,
                awaitingAnswer: Bool = true) throws {
        self.directory = directory
        child = try Child.spawn(launcher + [executable, "--units", "\(directory.path)/units", "--runtime-dir", "\(directory.path)/run",
                                 "--log-level", "debug", "--state-dir", "\(directory.path)/state",
                                 "--metrics-file", "\(directory.path)/metrics/ferry.prom"]
                                 + extraArguments, environment: environment, outputPath: outputPath)
        guard awaitingAnswer else { return }
        for _ in 0..<200 {
            if (try? call("GetManager")) != nil { return }
            usleep(20_000)
        }
        throw FerrydTestError("ferryd did not answer on \(control): \(child.output)")
    }

    deinit {
        child.kill(SIGTERM)
        _ = child.wait()
    }

    public func writeUnit(_ name: String, _ text: String) { directory.write("units/\(name)", text) }

    /// Calls a method of io.ferry.Manager; returns the reply (which may be an error reply).
    public func call(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> Varlink.Reply {
        var client = try VarlinkClient(path: control)
        return try client.call(Varlink.Call(method: method.contains(".") ? method : "io.ferry.Manager.\(method)",
                                            parameters: parameters))
    }

    /// A unit's summary (`unit` of GetUnit).
    public func unit(_ name: String) throws -> [String: JSONValue] {
        let reply = try call("GetUnit", ["name": .string(name)])
        if let error = reply.error { throw FerrydTestError("GetUnit \(name): \(error)") }
        return reply.parameters["unit"]?.object ?? [:]
    }

    public func state(_ name: String) throws -> String {
        let info = try unit(name)
        return "\(info["active"]?.string ?? "?") (\(info["sub"]?.string ?? "?"))"
    }

    /// Waits until `condition` holds, polling; false after `seconds`.
    public func waitUntil(seconds: Double = 20, _ condition: () throws -> Bool) -> Bool {
        let deadline = MonotonicClock.now() + .milliseconds(Int64(seconds * 1000))
        while MonotonicClock.now() < deadline {
            if (try? condition()) == true { return true }
            usleep(20_000)
        }
        return false
    }

    /// The fd names and contents a service reported (services in these tests write a report file).
    public func fdStore(_ name: String) throws -> [[String: JSONValue]] {
        let reply = try call("ListFDStore", ["name": .string(name)])
        return (reply.parameters["entries"]?.array ?? []).compactMap(\.object)
    }

    /// How many descriptors ferryd holds.
    public var openDescriptors: Int {
        guard let folder = opendir("/proc/\(child.pid)/fd") else { return -1 }
        defer { closedir(folder) }
        var count = 0
        while readdir(folder) != nil { count += 1 }
        return count - 2
    }

    /// The descriptor count once it stops changing (connections just closed are reaped first).
    public func settledDescriptors() -> Int {
        var last = openDescriptors
        for _ in 0..<50 {
            usleep(100_000)
            let now = openDescriptors
            if now == last { return now }
            last = now
        }
        return last
    }

    /// Whether ferryd is still running (not crashed).
    public var isAlive: Bool { kill(child.pid, 0) == 0 && !isZombie }

    private var isZombie: Bool {
        guard let text = try? contentsOf("/proc/\(child.pid)/stat") else { return true }
        return text.split(separator: " ").dropFirst(2).first == "Z"
    }

    public var log: String { child.output }
}

public struct FerrydTestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reads a whole (small) file.
func contentsOf(_ path: String) throws -> String {
    guard let text = FileIO.text(ofFile: path) else { throw FerrydTestError("cannot read \(path)") }
    return text
}

/// The Debian python with python3-systemd (the pyenv one on PATH lacks it).
public let systemPython = "/usr/bin/python3"

/// Reads a whole file as text ("" when missing).
public func readText(_ path: String) -> String { (try? contentsOf(path)) ?? "" }
