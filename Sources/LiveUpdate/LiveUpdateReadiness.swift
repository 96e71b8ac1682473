import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// Whether this host can make a live update, found without opening /dev/liveupdate: what ferryd
/// logs at start, what `ferryctl status` and `ferryctl luo check` show.
public struct LiveUpdateReadiness: Hashable, Sendable, Codable {
    /// `kernel` or `emulator`.
    public var backend: String
    /// The emulator's control socket, for the emulator backend.
    public var emulatorSocket: String?
    /// LUO can be used: the kernel has /dev/liveupdate, or the emulator answers.
    public var ready: Bool
    /// One line: `kernel ready: …`, `live update unavailable: <why>`, `emulator at PATH`.
    public var summary: String
    /// A kernel is loaded for the next kexec; nil for the emulator and for kernels without kexec.
    public var kexecLoaded: Bool?
    /// One line about kexec: loaded or not, unsupported, or simulated.
    public var kexec: String
    /// `uname -r`.
    public var kernelRelease: String?

    /// Checks `backend`: the kernel from `facts` (the running kernel's when nil), the emulator by
    /// connecting to its socket.
    public static func check(_ backend: any LiveUpdateBackend, facts given: KernelFacts? = nil) -> LiveUpdateReadiness {
        if let emulator = backend as? EmulatorBackend {
            let answer: String
            let ready: Bool
            do throws(SystemCallError) {
                _ = try UnixSocket.connect(path: emulator.socketPath, kind: .sequentialPacket)
                ready = true
                answer = "emulator at \(emulator.socketPath)"
            } catch {
                ready = false
                answer = "live update unavailable: no LUO emulator answers at \(emulator.socketPath) "
                    + "(\(error.errno.symbolicName)); start one with ferryctl emulator serve --socket \(emulator.socketPath)"
            }
            return LiveUpdateReadiness(backend: "emulator", emulatorSocket: emulator.socketPath, ready: ready, summary: answer,
                                       kexecLoaded: nil, kexec: "simulated by the emulator (ferryctl kexec --rehearse)",
                                       kernelRelease: KernelFacts.currentRelease())
        }
        let facts = given ?? KernelFacts.current()
        let summary: String
        if facts.deviceNodePresent {
            let level = facts.release.flatMap(BehaviourLevel.forRelease).map { ", LUO level \($0.rawValue)" } ?? ""
            summary = "kernel ready: \(LiveUpdateLimits.devicePath) (kernel \(facts.release ?? "?")\(level))"
        } else {
            summary = facts.whyDeviceIsMissing.description
        }
        let kexec = switch facts.kexecLoaded {
        case nil: "unsupported: the kernel was built without kexec"
        case true?: "a kernel is loaded; ferryctl kexec reboots into it"
        case false?: "no kernel loaded; ferryctl kexec --kernel IMAGE loads one"
        }
        return LiveUpdateReadiness(backend: "kernel", emulatorSocket: nil, ready: facts.deviceNodePresent, summary: summary,
                                   kexecLoaded: facts.kexecLoaded, kexec: kexec, kernelRelease: facts.release)
    }
}
