import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage
import Supervisor

#if canImport(Glibc)
import Glibc
#endif

/// How this boot ends once everything is preserved: a real kexec, or in a rehearsal the
/// emulator's simulated kexec and a fresh ferryd. Each returns only on failure, with the reason.
enum HandOver {
    /// Fault injection for the rollback tests: the hand-over "fails" with this errno.
    static let injectedFailureVariable = "FERRYD_TEST_FAIL_REBOOT"

    /// ferryd becomes the last process standing, then `reboot(LINUX_REBOOT_CMD_KEXEC)`.
    static func kexec(_ manager: Manager) -> String {
        if let injected = injectedFailure() { return injected }
        endOtherProcesses(manager)
        do throws(SystemCallError) {
            try Kexec.reboot()
        } catch {
            return "\(error.call): \(error.errno.symbolicName) (\(error.errno))"
        }
        return "reboot(LINUX_REBOOT_CMD_KEXEC) returned"
    }

    /// The emulator's simulated kexec; past it every service dies and ferryd executes itself
    /// afresh, inheriting nothing (every fd is close-on-exec), as on a new boot.
    static func rehearsal(_ manager: Manager, emulator: String, beforeExec: () -> Void) -> String {
        if let injected = injectedFailure() { return injected }
        // Tests inject emulator faults here (e.g. "lose=ferry.1").
        let options = getenv("FERRYD_TEST_EMULATOR_KEXEC").map { String(cString: $0) } ?? ""
        do throws(SystemCallError) {
            _ = try EmulatorControl.simulateKexec(socketPath: emulator, options: options)
        } catch {
            return "simulated kexec: \(error)"
        }
        // A manager above that keeps the stores but does not carry a kexec holds the old files:
        // a real kexec would end them, and a restore cut short by a crash must find there only
        // what it put there itself (a copy of a new file, which it recognises).
        manager.stores.upstream?.dropAllEntries()
        beforeExec()
        killServices(manager)
        var arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &arguments)
        // The simulated kexec already happened: the emulator holds the next boot's sessions, and
        // this process cannot roll back into them. Ending lets a supervisor start ferryd afresh.
        printError("ferryd: cannot start again after the simulated kexec: execv: \(Errno(rawValue: errno).symbolicName)")
        exit(1)
    }

    private static func injectedFailure() -> String? {
        getenv(injectedFailureVariable).map {
            "reboot(LINUX_REBOOT_CMD_KEXEC): \(String(cString: $0)) (injected by \(injectedFailureVariable))"
        }
    }

    /// SIGKILL to every service's process group.
    static func killServices(_ manager: Manager) {
        for service in manager.services.values {
            if let group = service.processGroup { Processes.signalGroup(group, SIGKILL) }
        }
    }

    /// Before a kexec ferryd is the last process standing; as PID 1 it reaps everyone first and
    /// leaves the disks clean (unmounted, or read-only), as systemd-shutdown does.
    static func endOtherProcesses(_ manager: Manager) {
        killServices(manager)
        guard getpid() == 1 else { return sync() }
        kill(-1, SIGKILL)  // every process but init
        var status: CInt = 0
        while waitpid(-1, &status, 0) > 0 || errno == EINTR {}
        for left in Mounts.quiesce() { printError("ferryd: still writable before the kexec: \(left)") }
    }
}
