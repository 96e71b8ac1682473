import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Signals delivered as readable data (signalfd). Block them first, before any thread starts.
public enum SignalFD {
    /// Blocks `signals` in the calling thread (and threads it starts later).
    public static func block(_ signals: [CInt]) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// A close-on-exec, non-blocking signalfd for `signals` (which must be blocked). The caller owns it.
    public static func open(_ signals: [CInt]) throws(SystemCallError) -> OwnedFD {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return OwnedFD(adopting: try systemCall("signalfd") { signalfd(-1, &set, CInt(SFD_CLOEXEC | SFD_NONBLOCK)) })
    }

    /// The signals waiting on `fd`, oldest first.
    public static func drain(_ fd: FileDescriptor) -> [CInt] {
        var signals: [CInt] = []
        var info = signalfd_siginfo()
        while read(fd.rawValue, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            signals.append(CInt(info.ssi_signo))
        }
        return signals
    }
}

/// A one-shot monotonic timer as a descriptor (timerfd), for the event loop.
public struct TimerFD: ~Copyable {
    public let descriptor: OwnedFD

    public init() throws(SystemCallError) {
        descriptor = OwnedFD(adopting: try systemCall("timerfd_create") {
            timerfd_create(CLOCK_MONOTONIC, CInt(TFD_CLOEXEC | TFD_NONBLOCK))
        })
    }

    /// Fires once after `delay` (a zero delay fires at once); re-arming replaces the previous time.
    public func arm(after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        var spec = itimerspec()
        spec.it_value.tv_sec = max(0, Int(seconds))
        spec.it_value.tv_nsec = max(0, Int(attoseconds / 1_000_000_000))
        if spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0 { spec.it_value.tv_nsec = 1 }
        _ = timerfd_settime(descriptor.rawValue, 0, &spec, nil)
    }

    public func disarm() {
        var spec = itimerspec()
        _ = timerfd_settime(descriptor.rawValue, 0, &spec, nil)
    }

    /// Consumes the expiry so the descriptor stops being readable.
    public func acknowledge() {
        var count: UInt64 = 0
        _ = read(descriptor.rawValue, &count, 8)
    }
}

/// The monotonic clock, for timings reported in the same words everywhere.
public enum MonotonicClock {
    public static func now() -> Duration {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return .seconds(Int64(spec.tv_sec)) + .nanoseconds(Int64(spec.tv_nsec))
    }

    public static func microseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}
