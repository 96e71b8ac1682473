import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Ferry's prepare barrier, for a Swift service whose unit says `X-FerryPrepare=yes`
/// (docs/prepare-barrier.md). Before a live update stops anything, ferryd sends the prepare
/// signal; the service flushes or quiesces and answers `prepared()`, or `refuse(_:)` to stop the
/// update. If the update is abandoned (a refusal anywhere, or a deadline missed) the resume
/// signal follows. Under systemd nothing is ever sent, and the keys are ignored.
///
/// A realtime signal's default action ends the process: block both signals before starting any
/// thread, then read them from `signalDescriptor()` (a signalfd) in the service's own loop.
public enum LiveUpdatePreparation {
    /// `X-FerryPrepareSignal=`'s default: SIGRTMIN+4.
    public static var prepareSignal: CInt { __libc_current_sigrtmin() + 4 }
    /// `X-FerryResumeSignal=`'s default: SIGRTMIN+5.
    public static var resumeSignal: CInt { __libc_current_sigrtmin() + 5 }

    /// Blocks both signals in the calling thread (and threads started after) and returns a
    /// close-on-exec, non-blocking signalfd that becomes readable when one arrives; read it with
    /// `SignalFD.drain`. The caller owns it.
    public static func signalDescriptor(prepare: CInt = prepareSignal, resume: CInt = resumeSignal) throws(SystemCallError) -> OwnedFD {
        SignalFD.block([prepare, resume])
        return try SignalFD.open([prepare, resume])
    }

    /// `X_FERRY_PREPARED=1`: ready to be stopped and carried.
    public static func prepared() throws {
        try Notifier.send("X_FERRY_PREPARED=1")
    }

    /// `X_FERRY_REFUSED=REASON`: the update is abandoned, and the operator reads `reason` (one
    /// line: newlines would end the field, so they become spaces).
    public static func refuse(_ reason: String) throws {
        let line = String(reason.map { $0.isNewline ? " " : $0 })
        try Notifier.send("X_FERRY_REFUSED=\(line.isEmpty ? "refused" : line)")
    }
}
