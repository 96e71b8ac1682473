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
/// that a rehearsal executes.
enum TestFault {
    static let variable = "FERRYD_TEST_DIE_AT"

    private static let step: String? = getenv(variable).map { String(cString: $0) }

    /// Dies here, as a crash would, if the tests asked for this step (`name` is worked out only
    /// then).
    static func reached(_ name: @autoclosure () -> String) {
        guard let step, step == name() else { return }
        printError("ferryd: dying at step '\(step)' (\(variable))")
        kill(getpid(), SIGKILL)
    }
}
