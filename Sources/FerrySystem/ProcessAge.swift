#if canImport(Glibc)
import Glibc
#endif

/// How long ago this process was created (its fork, in the kernel's clock ticks of usually 10 ms),
/// so that a daemon can say how long its own start took, loader and runtime included, which a
/// clock read in `main` cannot see.
public enum ProcessAge {
    /// Milliseconds since this process was created, or nil when /proc is not mounted.
    public static func milliseconds() -> UInt64? {
        guard let stat = FileIO.text(ofFile: "/proc/self/stat", limit: 4096),
            let startTicks = startTime(fromStat: stat)
        else { return nil }
        let ticksPerSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        var now = timespec()
        // The start time counts from boot, suspend included, as CLOCK_BOOTTIME does.
        clock_gettime(CLOCK_BOOTTIME, &now)
        let nowMilliseconds = UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
        let startMilliseconds = startTicks * 1000 / ticksPerSecond
        return nowMilliseconds >= startMilliseconds ? nowMilliseconds - startMilliseconds : 0
    }

    /// Field 22 of `/proc/self/stat`; the command name (field 2) is in parentheses and may hold
    /// spaces or parentheses itself, so fields are counted after its last ')'.
    static func startTime(fromStat stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
