import FerrySystem
import ServiceKit

#if canImport(Glibc)
import Glibc
#endif

/// `ferryd --kexec-watch [--control PATH] [--armed PATH]`: what ferry-kexec-watch.service runs from
/// boot on. It waits for SIGTERM; systemd sends it when a kexec transaction stops the unit (it
/// conflicts with kexec.target only, and refuses a manual stop), and then it tells ferryd that a
/// kexec is under way, as `ferryd --kexec-under-way` does, and exits when ferryd has handed its
/// stores over. The process is started at boot so that a kexec's blackout does not pay for a
/// process start (half a second of it on one emulated CPU).
///
/// While armed it keeps the file `--armed` (default /run/ferry/kexec-watch.armed), which turns
/// ferry-kexec.service (the process started at the kexec, the fallback) into a no-op by its
/// `ConditionPathExists=!`. The file stays after a kexec stop: the fallback must not run as well.
///
/// The SIGTERM of systemd-shutdown's final kill (a reboot or power-off, where the unit is not
/// stopped) is told apart by PID 1 no longer being systemd: then it only removes the file and exits.
enum KexecWatch {
    static let modeArgument = "--kexec-watch"
    static let defaultArmedPath = "/run/ferry/kexec-watch.armed"

    static func run(arguments: [String]) -> Never {
        // Before anything else: a SIGTERM from here on is read, never the default death.
        SignalFD.block([SIGTERM, SIGINT, SIGPIPE])
        var control = "/run/ferry/control"
        var armed = defaultArmedPath
        var remaining = arguments.makeIterator()
        while let argument = remaining.next() {
            switch (argument, remaining.next()) {
            case ("--control", let path?): control = path
            case ("--armed", let path?): armed = path
            default:
                printError("ferryd \(modeArgument): bad argument '\(argument)'; usage: ferryd \(modeArgument) [--control PATH] [--armed PATH]")
                exit(2)
            }
        }
        let signals: OwnedFD
        do throws(SystemCallError) {
            signals = try SignalFD.open([SIGTERM, SIGINT])
            // This process's pid in it, for a reader.
            try AtomicFile.write(Array("\(getpid())\n".utf8), to: armed)
        } catch {
            printError("ferryd \(modeArgument): not armed: \(error)")
            exit(1)
        }
        if Notifier.socketPath != nil { try? Notifier.ready(status: "armed: tells ferryd at \(control) when a kexec begins") }
        guard let signal = waitForSignal(signals) else {
            printError("ferryd \(modeArgument): its signalfd failed (poll: error or invalid fd); exiting so that Restart= arms a new watch")
            unlink(armed)
            exit(1)
        }
        guard signal == SIGTERM, !pidOneIsShuttingDown() else {
            // A reboot or power-off (systemd-shutdown's final kill), or SIGINT: no kexec to tell of.
            unlink(armed)
            exit(0)
        }
        exit(KexecUnderWay.tellFerryd(control: control))
    }

    /// The first signal that arrives; nil if the signalfd fails (the unit's Restart= arms a new watch).
    private static func waitForSignal(_ signals: borrowing OwnedFD) -> CInt? {
        var descriptor = pollfd(fd: signals.rawValue, events: Int16(POLLIN), revents: 0)
        while true {
            if poll(&descriptor, 1, -1) < 0 && errno != EINTR { return nil }
            if descriptor.revents & Int16(POLLNVAL | POLLERR) != 0 { return nil }
            if let first = SignalFD.drain(signals.borrowed).first { return first }
        }
    }

    /// Whether PID 1 is systemd-shutdown (systemd's last stage, which sends every process left
    /// SIGTERM): its comm is "systemd-shutdow", truncated to 15 bytes by the kernel.
    private static func pidOneIsShuttingDown() -> Bool {
        FileIO.text(ofFile: "/proc/1/comm", limit: 64)?.hasPrefix("systemd-shutdow") ?? false
    }
}
