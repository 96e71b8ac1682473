import ArgumentParser
import LiveUpdate

/// `ferryctl luo`: direct looks at /dev/liveupdate.
struct LiveUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luo", abstract: "Inspect /dev/liveupdate (kernel or emulator).",
        subcommands: [Probe.self])

    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tell the kernel's LUO behaviour level from its answers.")

        @OptionGroup var backendOptions: BackendOptions

        func run() throws {
            let backend = backendOptions.backend ?? KernelBackend()
            do throws(LiveUpdateError) {
                let device = try LiveUpdateDevice.open(backend)
                print(try BehaviourProbe.probe(device))
            } catch {
                print("ferryctl: \(error)")
                throw ExitCode(error.kind == .anotherAgentHoldsDevice ? 3 : 2)
            }
        }
    }
}
