import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a service process starts with.
public struct SpawnRequest: Sendable {
    public var path: String
    public var arguments: [String]
    public var environment: [String]
    /// Placed at 3, 4, ... in the child (the caller keeps its own descriptors).
    public var listenDescriptors: [CInt]
    /// Add `LISTEN_PID=<child pid>` to the environment (with LISTEN_FDS).
    public var setListenPID: Bool
    /// stdin, stdout, stderr; -1 for /dev/null.
    public var standardIO: [CInt]
    public var workingDirectory: String?
    public var identity: (uid: uid_t, gid: gid_t, groups: [gid_t])?
    /// An open `cgroup.procs` the child writes itself into before exec (-1: none).
    public var cgroupProcsFD: CInt

    public init(path: String, arguments: [String], environment: [String], listenDescriptors: [CInt] = [],
                setListenPID: Bool = false, standardIO: [CInt] = [-1, 2, 2], workingDirectory: String? = nil,
                identity: (uid: uid_t, gid: gid_t, groups: [gid_t])? = nil, cgroupProcsFD: CInt = -1) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.listenDescriptors = listenDescriptors
        self.setListenPID = setListenPID
        self.standardIO = standardIO
        self.workingDirectory = workingDirectory
        self.identity = identity
        self.cgroupProcsFD = cgroupProcsFD
    }
}

/// Starts processes with our own fork/exec (see ferry_spawn.c): descriptors at 3.., LISTEN_PID
/// written by the child itself, signal mask and handlers reset, every other fd closed at exec.
public enum Spawner {
    /// Spawns the process; the caller reaps it. Exec failures come back as the child's errno.
    public static func spawn(_ request: SpawnRequest) throws(SystemCallError) -> pid_t {
        // Everything the child touches is allocated here, before fork.
        let argv = request.arguments.map { strdup($0) } + [nil]
        var environment = request.environment.filter { !$0.hasPrefix("LISTEN_PID=") }
        var listenPIDIndex: Int? = nil
        if request.setListenPID {
            listenPIDIndex = environment.count
            environment.append("LISTEN_PID=" + String(repeating: "0", count: 24))
        }
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        if let index = listenPIDIndex { envp[index]![11] = 0 }  // the child writes its pid after "LISTEN_PID="
        let groups = request.identity?.groups ?? []
        let pid = request.listenDescriptors.withUnsafeBufferPointer { fds in
            groups.withUnsafeBufferPointer { groupList in
                argv.withUnsafeBufferPointer { argvPointer in
                    envp.withUnsafeBufferPointer { envpPointer in
                        withOptionalCString(request.workingDirectory) { directory in
                            request.path.withCString { path in
                                var spawn = ferry_spawn_request()
                                spawn.path = path
                                spawn.argv = UnsafePointer(argvPointer.baseAddress!)
                                spawn.envp = UnsafePointer(envpPointer.baseAddress!)
                                spawn.listen_fds = fds.baseAddress
                                spawn.listen_fd_count = CInt(fds.count)
                                spawn.listen_pid_entry = listenPIDIndex.map { envp[$0]! }
                                spawn.stdio = (request.standardIO[0], request.standardIO[1], request.standardIO[2])
                                spawn.working_directory = directory
                                if let identity = request.identity {
                                    spawn.set_ids = 1
                                    spawn.uid = identity.uid
                                    spawn.gid = identity.gid
                                    spawn.groups = groupList.baseAddress
                                    spawn.group_count = CInt(groupList.count)
                                }
                                spawn.cgroup_procs_fd = request.cgroupProcsFD
                                return ferry_spawn(&spawn)
                            }
                        }
                    }
                }
            }
        }
        if pid == -1 { throw SystemCallError("spawn(\(request.path))", Errno(rawValue: errno)) }
        return pid
    }

    private static func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let text else { return body(nil) }
        return text.withCString { body($0) }
    }
}

/// Process control: signals, reaping, pidfds.
public enum Processes {
    public enum Exit: Equatable, Sendable, CustomStringConvertible {
        case exited(CInt)
        case signaled(CInt)

        public var isSuccess: Bool { self == .exited(0) }
        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Reaps one exited child without blocking; nil when none is waiting.
    public static func reapAny() -> (pid: pid_t, exit: Exit)? {
        var status: CInt = 0
        let pid = waitpid(-1, &status, WNOHANG)
        guard pid > 0 else { return nil }
        let exit: Exit = status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
        return (pid, exit)
    }

    /// Sends `signal` to every process of the process group `group`; ESRCH (none left) is fine.
    public static func signalGroup(_ group: pid_t, _ signal: CInt) {
        _ = kill(-group, signal)
    }

    public static func signal(_ pid: pid_t, _ signal: CInt) {
        _ = kill(pid, signal)
    }

    /// Whether any process is left in the process group.
    public static func groupAlive(_ group: pid_t) -> Bool {
        kill(-group, 0) == 0 || errno == EPERM
    }

    /// A pidfd for `pid` (readable once the process exits). The caller owns it.
    public static func pidfd(_ pid: pid_t) throws(SystemCallError) -> OwnedFD {
        OwnedFD(adopting: try systemCall("pidfd_open(\(pid))") { ferry_pidfd_open(pid) })
    }

    /// The process group of `pid`, or nil if it is gone.
    public static func processGroup(of pid: pid_t) -> pid_t? {
        let group = getpgid(pid)
        return group < 0 ? nil : group
    }

    /// Makes this process the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER).
    /// The processes whose process group is `group` (from /proc).
    public static func members(ofGroup group: pid_t) -> [pid_t] {
        guard let folder = opendir("/proc") else { return [] }
        defer { closedir(folder) }
        var members: [pid_t] = []
        while let entry = readdir(folder) {
            let name = directoryEntryName(entry)
            if let pid = pid_t(name), processGroup(of: pid) == group { members.append(pid) }
        }
        return members
    }

    public static func becomeSubreaper() {
        _ = ferry_prctl_set_child_subreaper()
    }
}
