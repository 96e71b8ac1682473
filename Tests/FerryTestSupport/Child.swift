import FerrySystem
import LiveUpdate
import LiveUpdateEmulator
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An emulator on a thread of the test process, on a fresh socket, stopped at the end of `body`.
public func withEmulator<T>(_ level: BehaviourLevel = .v7_2, _ body: (EmulatorHost) throws -> T) throws -> T {
    ResourceLimits.raiseDescriptorLimit()
    var logger = Logger(label: "test.emulator")
    logger.logLevel = .critical
    let path = "/tmp/ferry-emulator-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    let host = try EmulatorHost(socketPath: path, profile: EmulatorProfile(level), logger: logger)
    defer { host.stop() }
    return try body(host)
}

/// The ferryctl executable built next to the test bundle.
/// A program built next to the test bundle (ferryctl, ferryd).
public func builtProduct(_ name: String) -> String {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count)
    let exe = String(decoding: buffer[0..<max(count, 0)], as: UTF8.self)
    var folder = exe
    while !folder.isEmpty, !folder.hasSuffix("/") { folder.removeLast() }
    // The test binary sits in .build/<triple>/debug/<package>PackageTests.xctest (a file on Linux).
    return folder + name
}

public var ferryctlPath: String { builtProduct("ferryctl") }
public var ferrydPath: String { builtProduct("ferryd") }

/// A child process started with posix_spawn; its output goes to a file the test can read.
public struct Child: Sendable {
    public let pid: pid_t
    public let outputPath: String

    public static func spawn(_ arguments: [String], environment: [String] = [], outputPath given: String? = nil) throws -> Child {
        let outputPath = given ?? "/tmp/ferry-child-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = (environment + ["PATH=/usr/bin:/bin"]).map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard result == 0 else { throw SystemCallError("posix_spawn", Errno(rawValue: result)) }
        return Child(pid: pid, outputPath: outputPath)
    }

    /// Waits for the child; returns its exit status, or 128 + signal.
    public func wait() -> CInt {
        var status: CInt = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }

    public func kill(_ signal: CInt = SIGKILL) { _ = Glibc.kill(pid, signal) }

    public var output: String {
        // "e": close-on-exec, or a child another test spawns meanwhile inherits this file.
        guard let file = fopen(outputPath, "re") else { return "" }
        defer { fclose(file) }
        var text = ""
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, CInt(line.count), file) != nil {
            text += String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text
    }
}

