import CFerry
import FerrySystem
import Supervisor

#if canImport(Glibc)
import Glibc
#endif

/// What ferryd does as PID 1: mount the essential file systems, power off or restart at the end.
/// Reaping orphans is the SIGCHLD loop's job everywhere; ending every other process before a kexec
/// is the live update's hand-over (Orchestrator).
enum InitDuties {
    static func mountEssentials() {
        let mounts: [(String, String, String)] = [
            ("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs"), ("devtmpfs", "/dev", "devtmpfs"), ("tmpfs", "/run", "tmpfs"),
        ]
        for (source, target, type) in mounts {
            mkdir(target, 0o755)
            // A re-executed ferryd finds them mounted; mounting again would hide /run's sockets.
            if isMountPoint(target) { continue }
            if mount(source, target, type, 0, nil) != 0 && errno != EBUSY {
                printError("ferryd: mounting \(type) on \(target) failed: errno \(errno)")
            }
        }
        // cgroup v2 for process tracking, where the kernel has it.
        if !isMountPoint("/sys/fs/cgroup") && mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, nil) != 0 {
            printError("ferryd: no cgroup2 (errno \(errno)); tracking services by process group")
        }
    }

    /// Whether `path` is on another file system than its parent.
    static func isMountPoint(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard stat(path, &own) == 0, stat(path + "/..", &parent) == 0 else { return false }
        return own.st_dev != parent.st_dev
    }

    /// The last process standing: end every other, leave the disks clean, then power off or restart.
    static func end(restart: Bool) -> Never {
        kill(-1, SIGKILL)  // every process but init
        var status: CInt = 0
        while waitpid(-1, &status, 0) > 0 || errno == EINTR {}
        for left in Mounts.quiesce() { printError("ferryd: still writable at the end: \(left)") }
        _ = ferry_reboot(UInt32(restart ? LINUX_REBOOT_CMD_RESTART : LINUX_REBOOT_CMD_POWER_OFF))
        _ = ferry_reboot(UInt32(LINUX_REBOOT_CMD_RESTART))
        exit(0)
    }
}
