import FerryControl
import FerrySystem
import Orchestrator

#if canImport(Glibc)
import Glibc
#endif

// For the start-up time ferryd logs (the loader and the runtime come before this line).
ProcessAge.mainBegan = MonotonicClock.microseconds()
// ferryd's keeper (KeeperProcess) is this binary too; it keeps default signal dispositions.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == KeeperProcess.modeArgument {
    KeeperProcess.run(arguments: Array(CommandLine.arguments.dropFirst(2)))
}
// ferry-kexec.service's client (KexecUnderWay): a request to the running ferryd, then exit.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == KexecUnderWay.modeArgument {
    KexecUnderWay.run(arguments: Array(CommandLine.arguments.dropFirst(2)))
}
// ferry-kexec-watch.service (KexecWatch): waits from boot on for the kexec transaction's SIGTERM.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == KexecWatch.modeArgument {
    KexecWatch.run(arguments: Array(CommandLine.arguments.dropFirst(2)))
}
// Signals first, before anything can start a thread: they are read from a signalfd by the loop.
SignalFD.block([SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE])
// Before an upgrade can replace the binary: daemon-reexec runs what is at this path then.
Reexec.recordExecutablePath()

let options: DaemonOptions
do {
    options = try DaemonOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError("ferryd: \(error)\n\(DaemonOptions.usage)")
    exit(2)
}
if options.help {
    print(DaemonOptions.usage)
    exit(0)
}
if options.version {
    print("ferryd \(FerryVersion.current)")
    exit(0)
}
do {
    let daemon = try Daemon(options: options)
    try daemon.run()
} catch {
    printError("ferryd: \(error)")
    exit(1)
}
