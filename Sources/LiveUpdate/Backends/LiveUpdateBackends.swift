#if canImport(Glibc)
import Glibc
#endif

/// Chooses a backend the way services and ferryd do.
public enum LiveUpdateBackends {
    /// The emulator when `FERRY_LIVEUPDATE_EMULATOR` names its socket, the kernel otherwise.
    public static func fromEnvironment() -> any LiveUpdateBackend {
        if let path = getenv(EmulatorWire.environmentVariable), path.pointee != 0 {
            return EmulatorBackend(socketPath: String(cString: path))
        }
        return KernelBackend()
    }
}
