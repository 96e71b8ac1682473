#if canImport(Glibc)
import Glibc
#endif

public enum ResourceLimits {
    /// Raises the soft RLIMIT_NOFILE to the hard limit: holders of many sessions and stored fds
    /// (the emulator, ferryd, the conformance table) need thousands of descriptors.
    public static func raiseDescriptorLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }
}
