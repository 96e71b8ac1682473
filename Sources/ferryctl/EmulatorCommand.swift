import ArgumentParser
import FerrySystem
import LiveUpdate
import LiveUpdateEmulator
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl emulator`: the LUO emulator daemon and its requests.
struct EmulatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run the /dev/liveupdate emulator, or ask a running one for a simulated kexec or its state.",
        subcommands: [Serve.self, SimulateKexec.self, Status.self],
        defaultSubcommand: Serve.self
    )

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Serve an emulated /dev/liveupdate until SIGTERM or SIGINT.")

        @Option(help: "The control socket to listen on.")
        var socket: String

        @Option(help: "Behaviour level to reproduce: 6.19, 7.1, 7.2 or 7.3.")
        var profile: String = "7.2"

        @Flag(help: "Report errors as JSON (serving prints nothing else).")
        var json = false

        func run() throws {
            guard let level = BehaviourLevel(rawValue: profile) else {
                throw ValidationError("unknown profile '\(profile)'; use 6.19, 7.1, 7.2 or 7.3")
            }
            ResourceLimits.raiseDescriptorLimit()
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            // Blocked before the server thread starts, so that only sigwait below receives them.
            var signals = blockTerminationSignals()
            let host: EmulatorHost
            do {
                host = try EmulatorHost(socketPath: socket, profile: EmulatorProfile(level))
            } catch {
                throw Failure(code: "cannot-listen", message: "the emulator cannot listen on \(socket): \(error)",
                              hint: "the folder must exist and be writable, and no other emulator may use the socket")
            }
            var received: CInt = 0
            sigwait(&signals, &received)
            host.stop()
        }
    }

    struct SimulateKexec: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kexec",
            abstract: "Carry the open outgoing sessions to the next emulated boot; prints the report as JSON.")

        @Option(help: "The emulator's control socket.")
        var socket: String

        @Flag(help: "Pretend the next kernel cannot read the handed-over data (open then fails with EIO).")
        var incompatible = false

        @Flag(help: "Print JSON (the report is JSON in any case).")
        var json = false

        func run() throws {
            print(try EmulatorControl.simulateKexec(socketPath: socket, options: incompatible ? "incompatible" : ""))
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the emulated kernel's sessions as JSON.")

        @Option(help: "The emulator's control socket.")
        var socket: String

        @Flag(help: "Print JSON (the state is JSON in any case).")
        var json = false

        func run() throws { print(try EmulatorControl.status(socketPath: socket)) }
    }
}

/// Blocks SIGTERM and SIGINT in this thread (and threads started after it); returns the set for sigwait.
func blockTerminationSignals() -> sigset_t {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    return signals
}
