import CFerry
import FerrySystem
import LiveUpdateReports
import Orchestrator
import Supervisor
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// daemon-reexec: the state goes into a memfd, every descriptor that must survive loses
/// FD_CLOEXEC, and /proc/self/exe is executed with FERRYD_STATE_FD naming the memfd.
enum Reexec {
    static let variable = "FERRYD_STATE_FD"

    /// The state itself, and its JSON reading, live in Orchestrator (`ReexecState`), where the
    /// fuzzers can reach them.
    typealias State = ReexecState

    /// The program to execute: the path ferryd was started from, resolved once at start, so that
    /// a binary replaced on disk (an upgrade) is what runs next, not the deleted old one.
    nonisolated(unsafe) static var executablePath = "/proc/self/exe"

    static func recordExecutablePath() {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return }
        let path = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // A binary already replaced before this call shows as "PATH (deleted)".
        executablePath = path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }

    /// Returns only when exec failed (then every descriptor is close-on-exec again).
    static func execute(_ state: State, keeping descriptors: [CInt], program: String? = nil) -> String? {
        guard let data = state.encoded(),
            let memfd = try? Memfd.create(name: "ferryd-state", contents: data),
            (try? FileIO.seek(memfd.borrowed, to: 0)) != nil
        else {
            return "cannot serialize state into a memfd"
        }
        for fd in descriptors + [memfd.rawValue] { _ = ferry_fcntl_int(fd, F_SETFD, 0) }
        setenv(variable, "\(memfd.rawValue)", 1)
        var arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        // The signal mask is inherited by the new image: the new ferryd reads pending SIGCHLDs.
        execv(program ?? executablePath, &arguments)
        let failure = errno
        for fd in descriptors { _ = ferry_fcntl_int(fd, F_SETFD, FD_CLOEXEC) }
        unsetenv(variable)
        arguments.forEach { free($0) }
        return "execv: \(Errno(rawValue: failure).symbolicName)"
    }

    /// The state left by a previous ferryd, if this process is a re-exec.
    static func takeState() -> State? {
        guard let value = getenv(variable), let fd = CInt(String(cString: value)) else { return nil }
        unsetenv(variable)
        let owned = OwnedFD(adopting: fd)
        guard let bytes = try? FileIO.readAll(owned.borrowed),
            let state = State.decode(bytes)
        else {
            printError("ferryd: cannot read the re-exec state in fd \(fd); starting fresh")
            return nil
        }
        for keep in [state.notifyFD, state.controlFD] + (state.lockFD.map { [$0] } ?? []) + (state.brokerFD.map { [$0] } ?? [])
            + state.units.flatMap({ $0.store.map(\.fd) }) {
            _ = ferry_fcntl_int(keep, F_SETFD, FD_CLOEXEC)
        }
        return state
    }
}
