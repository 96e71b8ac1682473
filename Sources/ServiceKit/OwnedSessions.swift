import LiveUpdate

#if canImport(Glibc)
import Glibc
#endif

/// LUO sessions a service creates and owns (a VM monitor's guest memory, say). The device is
/// single-opener, so it is opened only for the moment of creation; the session fd is the
/// service's, and it stores it with `Notifier.store` so that it outlives the process.
public enum OwnedSessions {
    /// The backend services use: the emulator when `FERRY_LIVEUPDATE_EMULATOR` names one (ferryd
    /// passes it on), else the kernel.
    public static var backend: any LiveUpdateBackend { LiveUpdateBackends.fromEnvironment() }

    /// Creates the session `name`; waits up to `patienceMilliseconds` while another agent briefly
    /// holds the single-opener device (another service doing the same, or ferryd restoring).
    public static func create(named name: String, patienceMilliseconds: Int = 3000) throws(LiveUpdateError) -> LiveUpdateSession {
        var waited = 0
        while true {
            do throws(LiveUpdateError) {
                let device = try LiveUpdateDevice.open(backend)
                return try device.createSession(named: name)
            } catch {
                guard error.kind == .anotherAgentHoldsDevice, waited < patienceMilliseconds else { throw error }
                usleep(10_000)
                waited += 10
            }
        }
    }
}
