import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// What the running kernel shows about live update, read from files (never by opening
/// /dev/liveupdate, which has a single opener): the release, the command line, the build
/// configuration when /boot has it, the misc device, the node, and kexec.
public struct KernelFacts: Hashable, Sendable {
    /// `uname -r`, e.g. `7.2.13`.
    public var release: String?
    /// `/proc/cmdline`.
    public var commandLine: String?
    /// `/boot/config-<release>`, when readable (Debian installs it with the kernel).
    public var configuration: String?
    /// `/sys/class/misc/liveupdate`: the kernel registered the LUO device.
    public var miscDeviceRegistered: Bool
    /// The device node exists.
    public var deviceNodePresent: Bool
    /// `/sys/kernel/kexec_loaded`: nil when the file is missing (a kernel without kexec), else
    /// whether a kernel is loaded for the next kexec.
    public var kexecLoaded: Bool?

    public init(release: String?, commandLine: String?, configuration: String? = nil, miscDeviceRegistered: Bool,
                deviceNodePresent: Bool = false, kexecLoaded: Bool? = false) {
        self.release = release
        self.commandLine = commandLine
        self.configuration = configuration
        self.miscDeviceRegistered = miscDeviceRegistered
        self.deviceNodePresent = deviceNodePresent
        self.kexecLoaded = kexecLoaded
    }

    /// The facts of the running kernel.
    /// The facts of the running kernel (the build configuration only when the node is missing).
    public static func current(devicePath: String = LiveUpdateLimits.devicePath) -> KernelFacts {
        let release = currentRelease()
        let nodePresent = access(devicePath, F_OK) == 0
        let kexec = FileIO.text(ofFile: "/sys/kernel/kexec_loaded", limit: 16)
        return KernelFacts(
            release: release,
            commandLine: KernelBackend.readCommandLine(),
            configuration: nodePresent ? nil : bootConfiguration,
            miscDeviceRegistered: access("/sys/class/misc/liveupdate", F_OK) == 0,
            deviceNodePresent: nodePresent,
            kexecLoaded: kexec.map { $0.hasPrefix("1") })
    }

    /// The running kernel's `/boot/config-<release>`, read once: it cannot change while it runs.
    private static let bootConfiguration: String? = currentRelease().flatMap {
        FileIO.text(ofFile: "/boot/config-\($0)", limit: 4 << 20)
    }

    /// `uname -r`.
    public static func currentRelease() -> String? {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return release.isEmpty ? nil : release
    }

    /// Whether the kernel was booted with `key` on (`key=on`, `1`, `y`, … as kstrtobool reads it).
    public func bootedWith(_ key: String) -> Bool {
        let words = (commandLine ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        return words.contains { word in
            guard word.hasPrefix("\(key)=") else { return false }
            return ["on", "1", "y", "yes", "true"].contains(word.dropFirst(key.count + 1).lowercased())
        }
    }

    /// The first of the options LUO needs that the build configuration leaves out (nil when it
    /// has them all, or when the configuration is not known).
    public var missingOption: String? {
        guard let configuration else { return nil }
        let set = Set(configuration.split(separator: "\n").filter { $0.hasSuffix("=y") }.map { String($0.dropLast(2)) })
        return ["CONFIG_KEXEC_FILE", "CONFIG_KEXEC_HANDOVER", "CONFIG_LIVEUPDATE"].first { !set.contains($0) }
    }

    /// Whether the release predates LUO (before 6.19); false when it cannot be read.
    public var releasePredatesLiveUpdate: Bool {
        guard let release else { return false }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return parts[0] < 6 || (parts[0] == 6 && parts[1] < 19)
    }

    /// Why /dev/liveupdate is missing, the most basic reason first: no device node for a
    /// registered device; a kernel too old, built without LUO or without kexec; a command line
    /// without `liveupdate=on` or `kho=on`; else LUO's setup failed at boot.
    public var whyDeviceIsMissing: LiveUpdateUnavailability {
        if miscDeviceRegistered { return .noDeviceNode }
        let release = release ?? "(unknown release)"
        if releasePredatesLiveUpdate { return .kernelTooOld(release: release) }
        if let missingOption { return .kernelBuiltWithout(option: missingOption, release: release) }
        if kexecLoaded == nil { return .kernelWithoutKexec(release: release) }
        if commandLine != nil && !bootedWith("liveupdate") { return .bootedWithoutLiveUpdate }
        if commandLine != nil && !bootedWith("kho") && configuration?.contains("CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT=y") != true {
            return .bootedWithoutKexecHandover
        }
        return .kernelWithoutLiveUpdate
    }
}
