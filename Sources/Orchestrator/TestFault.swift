import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// Fault injection for the crash tests: `FERRYD_TEST_DIE_AT=<step>` makes ferryd SIGKILL itself
/// when it reaches that step of a live update or of a restore. The steps, in order:
///
///     load, stop, stopped, serialize, preserve-session, preserve-N (after the Nth fd), mapping, handover
///     retrieve-session, retrieve-fd-N (after the Nth fd), finish (before FINISH), finished
///
/// A rehearsal's fresh ferryd inherits the variable, so a restore step is reached by the ferryd
/// that a rehearsal executes. With `FERRYD_TEST_DIE_ONCE=<file>` only a ferryd that finds no such
/// file dies (it creates it first), so one that a manager above starts again carries on.
enum TestFault {
    static let variable = "FERRYD_TEST_DIE_AT"
    static let onceVariable = "FERRYD_TEST_DIE_ONCE"

    private static let step: String? = getenv(variable).map { String(cString: $0) }

    /// Dies here, as a crash would, if the tests asked for this step (`name` is worked out only
    /// then).
    static func reached(_ name: @autoclosure () -> String) {
        guard let step, step == name() else { return }
        if let marker = getenv(onceVariable) {
            let fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return }
            close(fd)
        }
        printError("ferryd: dying at step '\(step)' (\(variable))")
        kill(getpid(), SIGKILL)
    }
}
