import ArgumentParser
import FerryControl

#if canImport(Glibc)
import Glibc
#endif

/// ferryctl: the operator's command line for Ferry.
struct Ferryctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferryctl",
        abstract: "Operate Ferry: live updates that keep services' file descriptors across kexec.",
        discussion: """
            Talks to ferryd over its control socket (--control, $FERRY_CONTROL, default /run/ferry/control). \
            A unit name without a type suffix means NAME.service. Every command takes --json; errors then \
            come as one JSON object on stdout: {"error": {"code", "message", "hint", "exitStatus", ...}}.

            Exit status, as systemctl's: 0 success; 1 failure (including ferryd not running); 3 for \
            status UNIT when the unit is inactive or failed; 4 not permitted (a change needs root, or the \
            control socket refuses this user), and for status UNIT no such unit; 5 no such unit (other \
            commands); 64 a usage error.
            """,
        version: "ferryctl \(FerryVersion.current)",
        subcommands: [
            StatusCommand.self, ShowCommand.self, CatCommand.self, ListUnitsCommand.self, StartCommand.self,
            StopCommand.self, RestartCommand.self, EnableCommand.self, DisableCommand.self, LogsCommand.self,
            FDStoreCommand.self, CleanCommand.self, DaemonReloadCommand.self, DaemonReexecCommand.self,
            KexecCommand.self, LastUpdateCommand.self, HistoryCommand.self, MetricsCommand.self, DemoCommand.self,
            TestServiceCommand.self, DemoServiceCommand.self, ConformanceCommand.self, EmulatorCommand.self,
            LiveUpdateCommand.self, SessionCommand.self,
        ]
    )
}

// ArgumentParser's own main, except that failures are reported in words (or as JSON with --json)
// with systemctl's exit statuses.
do {
    var command = try Ferryctl.parseAsRoot()
    try command.run()
} catch let failure as Failure {
    failure.report(json: jsonRequested)
    exit(failure.exitStatus)
} catch {
    let status = Ferryctl.exitCode(for: error)
    if jsonRequested && !(error is ExitCode) && status != .success {
        let message = Ferryctl.message(for: error)
        let usage = status == .validationFailure
        Failure(code: usage ? "usage" : "error", message: message.isEmpty ? "\(error)" : message,
                hint: usage ? "ferryctl help shows the commands" : nil, exitStatus: status.rawValue).report(json: true)
        exit(status.rawValue)
    }
    Ferryctl.exit(withError: error)
}
