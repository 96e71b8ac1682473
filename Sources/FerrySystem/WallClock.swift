#if canImport(Glibc)
import Glibc
#endif

/// The realtime clock, for what an operator reads as a date (when an update began). Durations
/// are never measured with it: it jumps when the time is set; `MonotonicClock` is for those.
public enum WallClock {
    /// Microseconds since the Unix epoch.
    public static func microseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(max(0, spec.tv_sec)) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}
