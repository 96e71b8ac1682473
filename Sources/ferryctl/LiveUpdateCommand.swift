import ArgumentParser
import FerryJSON
import LiveUpdate

/// `ferryctl luo`: direct looks at /dev/liveupdate.
struct LiveUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luo", abstract: "Inspect /dev/liveupdate (kernel or emulator).",
        subcommands: [Check.self, Probe.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Is this host ready for a live update? Kernel, command line, device, kexec; exit 0 when ready.",
            discussion: """
                Reads the kernel release, /proc/cmdline, /boot/config-RELEASE, /sys and /dev without opening \
                /dev/liveupdate (which has a single opener), and says what is missing. With --socket or \
                $FERRY_LIVEUPDATE_EMULATOR it checks that the emulator answers instead. ferryd does not \
                need to run. Exit status 0 when ready, 1 when not.
                """)

        @OptionGroup var backendOptions: BackendOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let readiness = LiveUpdateReadiness.check(backendOptions.backend ?? KernelBackend())
            if json {
                print(JSONValue.from(readiness).encodedString())
            } else {
                var lines = ["backend      \(readiness.backend)" + (readiness.emulatorSocket.map { " (\($0))" } ?? "")]
                if let release = readiness.kernelRelease { lines.append("kernel       \(release)") }
                lines.append("live update  \(readiness.summary)")
                lines.append("kexec        \(readiness.kexec)")
                lines.append(readiness.ready ? "ready: yes" : "ready: no")
                print(lines.joined(separator: "\n"))
            }
            if !readiness.ready { throw ExitCode(1) }
        }
    }

    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tell the kernel's LUO behaviour level from its answers.",
            discussion: """
                Opens the device and tries a short-lived session. Exit status 2 when live update is \
                unavailable (the message says why), 3 when another agent holds the device.
                """)

        @OptionGroup var backendOptions: BackendOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let backend = backendOptions.backend ?? KernelBackend()
            do throws(LiveUpdateError) {
                let device = try LiveUpdateDevice.open(backend)
                let finding = try BehaviourProbe.probe(device)
                if json {
                    print(JSONValue.object([
                        "level": .string(finding.level.rawValue), "getName": .bool(finding.getNameAvailable),
                        "emptyNameRefused": .bool(finding.emptyNameRefused),
                        "doublePreserveRefused": .bool(finding.doublePreserveRefused),
                        "releaseHint": finding.releaseHint.map { .string($0) } ?? .null,
                        "summary": .string(finding.description),
                    ]).encodedString())
                } else {
                    print(finding)
                }
            } catch {
                let busy = error.kind == .anotherAgentHoldsDevice
                var code = "live-update-error"
                if busy { code = "device-busy" } else if case .unavailable = error.kind { code = "live-update-unavailable" }
                throw Failure(code: code, message: "\(error)",
                              hint: busy ? "only one process may open it; ferryd holds it during a live update" : nil,
                              exitStatus: busy ? 3 : 2)
            }
        }
    }
}
