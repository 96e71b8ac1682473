import ArgumentParser
import LiveUpdate

/// Which /dev/liveupdate to talk to: the kernel, or an emulator at a socket.
struct BackendOptions: ParsableArguments {
    @Flag(name: .long, help: "Use the real kernel's /dev/liveupdate.")
    var kernel = false

    @Option(name: .long, help: "Use the LUO emulator listening at this socket (default: $\(EmulatorWire.environmentVariable)).")
    var socket: String?

    /// The backend chosen by the flags, then the environment; nil when neither names one.
    var backend: (any LiveUpdateBackend)? {
        if kernel { return KernelBackend() }
        if let socket { return EmulatorBackend(socketPath: socket) }
        return LiveUpdateBackends.fromEnvironment()
    }
}
