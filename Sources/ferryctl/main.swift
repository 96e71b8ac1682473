import ArgumentParser

/// ferryctl: the operator's command line for Ferry.
struct Ferryctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferryctl",
        abstract: "Operate Ferry: live updates that keep services' file descriptors across kexec.",
        subcommands: [
            StatusCommand.self, ListUnitsCommand.self, StartCommand.self, StopCommand.self, RestartCommand.self,
            FDStoreCommand.self, CleanCommand.self, DaemonReloadCommand.self, DaemonReexecCommand.self,
            KexecCommand.self, LastUpdateCommand.self, DemoCommand.self, TestServiceCommand.self, DemoServiceCommand.self,
            ConformanceCommand.self, EmulatorCommand.self, LiveUpdateCommand.self, EnableCommand.self, DisableCommand.self,
            LogsCommand.self, HistoryCommand.self,
            MetricsCommand.self,
        ]
    )
}

Ferryctl.main()
