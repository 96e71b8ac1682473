#if canImport(Glibc)
import Glibc
#endif

/// A Debian package some tests need. A test that needs a missing one is skipped with a line that
/// names the package (`.needs(.pythonSystemd)` in the test targets), instead of failing or timing
/// out. `Tests/setup.sh` installs them all.
///
/// `FERRY_TEST_WITHOUT` (package names, comma- or space-separated) makes the tests act as if those
/// packages were missing, to check the skips on a machine that has everything.
public enum Prerequisite: String, CaseIterable, Sendable {
    /// `/usr/bin/python3` with the `systemd` module: tool.py and the python interop service.
    case pythonSystemd = "python3-systemd"
    /// libsystemd's headers and library, and a C compiler: the C interop service.
    case libsystemdDev = "libsystemd-dev"
    /// `setpriv` and `prlimit`.
    case utilLinux = "util-linux"

    /// Whether the package is usable here (and not listed in `FERRY_TEST_WITHOUT`).
    public var isPresent: Bool {
        !Self.pretendMissing(environment: getenv("FERRY_TEST_WITHOUT").map { String(cString: $0) }).contains(self)
            && Self.detected.contains(self)
    }

    /// The line a skipped test prints.
    public var skipNote: String {
        "needs \(rawValue) (\(what)): apt-get install \(Self.packages(for: self)), or run Tests/setup.sh as root"
    }

    private var what: String {
        switch self {
        case .pythonSystemd: "the systemd module for /usr/bin/python3"
        case .libsystemdDev: "sd-daemon.h, libsystemd.so and cc"
        case .utilLinux: "setpriv and prlimit"
        }
    }

    private static func packages(for prerequisite: Prerequisite) -> String {
        switch prerequisite {
        case .pythonSystemd: "python3 python3-systemd"
        case .libsystemdDev: "libsystemd-dev gcc libc6-dev"
        case .utilLinux: "util-linux"
        }
    }

    /// The packages `FERRY_TEST_WITHOUT` names.
    public static func pretendMissing(environment value: String?) -> Set<Prerequisite> {
        Set((value ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).compactMap { Prerequisite(rawValue: String($0)) })
    }

    /// Looked for once per test process.
    private static let detected: Set<Prerequisite> = {
        var found: Set<Prerequisite> = []
        if access(systemPython, X_OK) == 0,
            let probe = try? Child.spawn([systemPython, "-c", "import systemd.daemon"], outputPath: "/dev/null"), probe.wait() == 0
        {
            found.insert(.pythonSystemd)
        }
        let library = ["/usr/lib/x86_64-linux-gnu/libsystemd.so", "/usr/lib/aarch64-linux-gnu/libsystemd.so", "/usr/lib/libsystemd.so"]
        if access("/usr/include/systemd/sd-daemon.h", R_OK) == 0, access("/usr/bin/cc", X_OK) == 0,
            library.contains(where: { access($0, R_OK) == 0 })
        {
            found.insert(.libsystemdDev)
        }
        if access("/usr/bin/setpriv", X_OK) == 0 && access("/usr/bin/prlimit", X_OK) == 0 { found.insert(.utilLinux) }
        return found
    }()
}
