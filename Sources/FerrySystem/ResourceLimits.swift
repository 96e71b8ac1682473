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

/// Writes a line to stderr with write(2), without touching C's `stderr` global (not concurrency-safe in Swift 6).
public func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
