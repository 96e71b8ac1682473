import CFerry
import FerrySystem
import Supervisor

#if canImport(Glibc)
import Glibc
#endif

/// Where this ferryd runs, found once at start: that decides who carries its units' stores
/// across a kexec and who performs the kexec. `ferryctl status` shows it.
struct Host {
    enum Kind: String {
        /// ferryd is init: it preserves, loads the kernel and reboots.
        case pid1
        /// A service of systemd (PID 1).
        case systemd
        /// A unit of another manager that offers a store (another ferryd, a container manager).
        case nested
        /// No manager above that keeps fds: ferryd does the LUO work itself.
        case standalone
    }

    var kind: Kind
    /// PID 1's systemd version, when ferryd runs under systemd.
    var systemdVersion: Int?
    /// The store of the manager above, when it offers one (`$NOTIFY_SOCKET` and `$FDSTORE` > 0).
    var upstream: UpstreamStore?
    /// `--manager-above-kexec yes|no`: what the detection would say, overridden.
    var aboveCarriesKexec: Bool?

    /// systemd carries fd stores across a kexec over LUO from this version on.
    static let systemdCarriesStoresFrom = 261

    /// Whether the manager above carries the stores (pushed up to it) across a kexec, so that
    /// ferryd must neither hold /dev/liveupdate nor preserve anything itself.
    var managerAboveCarriesKexec: Bool {
        guard upstream != nil else { return false }
        if let aboveCarriesKexec { return aboveCarriesKexec }
        switch kind {
        case .systemd: return (systemdVersion ?? 0) >= Self.systemdCarriesStoresFrom
        case .nested: return true
        case .pid1, .standalone: return false
        }
    }

    var description: String {
        switch kind {
        case .pid1: return "PID 1: ferryd preserves its units' stores and performs the kexec"
        case .standalone: return "standalone: ferryd preserves its units' stores in LUO itself"
        case .systemd, .nested:
            let manager = kind == .systemd ? "systemd \(systemdVersion.map(String.init) ?? "(version unknown)")" : "the manager above"
            guard let upstream else { return "under \(manager), without its fd store: ferryd preserves its units' stores in LUO itself" }
            let store = "stores pushed to \(manager)'s fd store (\(upstream.socketPath), FDSTORE=\(upstream.capacity))"
            return managerAboveCarriesKexec
                ? "nested under \(manager): \(store), which carries them across a kexec"
                : "under \(manager): \(store) against a crash of ferryd; ferryd preserves them in LUO for a kexec"
        }
    }

    static func detect(upstream: UpstreamStore?, aboveCarriesKexec: Bool? = nil) -> Host {
        if getpid() == 1 { return Host(kind: .pid1, upstream: nil) }
        let underSystemd = getppid() == 1 && access("/run/systemd/system", F_OK) == 0
        if underSystemd {
            return Host(kind: .systemd, systemdVersion: systemdVersion(), upstream: upstream, aboveCarriesKexec: aboveCarriesKexec)
        }
        return Host(kind: upstream == nil ? .standalone : .nested, upstream: upstream, aboveCarriesKexec: aboveCarriesKexec)
    }

    /// The running PID 1's version: from the name of the `libsystemd-shared-<version>.so` it has
    /// mapped (no child process: under TCG, starting `systemctl` costs ferryd's start hundreds of
    /// milliseconds), else from `systemctl --version`, which may name a newer systemd on disk
    /// than the one running.
    static func systemdVersion() -> Int? {
        versionFromPID1Mappings() ?? versionFromSystemctl()
    }

    /// "…/libsystemd-shared-252.so" (Debian), "…/libsystemd-shared-255.4-1.fc40.so" (Fedora).
    static func versionFromPID1Mappings(_ maps: String? = FileIO.text(ofFile: "/proc/1/maps", limit: 1 << 20)) -> Int? {
        guard let maps, let marker = maps.firstRange(of: "libsystemd-shared-") else { return nil }
        return Int(maps[marker.upperBound...].prefix(while: \.isNumber))
    }

    /// `systemctl --version`'s first line is "systemd 252 (252.36-1~deb12u1)".
    static func versionFromSystemctl() -> Int? {
        var pipe: [CInt] = [-1, -1]
        guard ferry_pipe_cloexec(&pipe) == 0 else { return nil }
        let reader = OwnedFD(adopting: pipe[0])
        let pid: pid_t
        do {
            let writer = OwnedFD(adopting: pipe[1])
            guard let spawned = try? Spawner.spawn(SpawnRequest(
                path: "/usr/bin/systemctl", arguments: ["systemctl", "--version"], environment: ["PATH=/usr/bin:/bin"],
                standardIO: [-1, writer.rawValue, -1]))
            else { return nil }
            pid = spawned
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while output.count < 4096, case .success(let count) = systemCallResult({ read(reader.rawValue, &chunk, chunk.count) }), count > 0 {
            output += chunk[0..<count]
        }
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let words = String(decoding: output.prefix(200), as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 2, words[0] == "systemd" else { return nil }
        return Int(words[1])
    }
}
