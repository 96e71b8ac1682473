import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The real kernel: `/dev/liveupdate` and ioctl(2).
public struct KernelBackend: LiveUpdateBackend {
    public let devicePath: String

    public init(devicePath: String = LiveUpdateLimits.devicePath) { self.devicePath = devicePath }

    public var name: String { "kernel" }

    public func openDevice() -> Result<OwnedFD, Errno> {
        systemCallResult { devicePath.withCString { Glibc.open($0, O_RDWR | O_CLOEXEC) } }
            .map { OwnedFD(adopting: $0) }
    }

    public func ioctl(_ fd: CInt, request: UInt, argument: inout RequestBuffer?) -> Errno? {
        let result: Result<CInt, Errno>
        if argument == nil {
            result = systemCallResult { ferry_ioctl_pointer(fd, request, nil) }
        } else {
            result = systemCallResult {
                argument!.bytes.withUnsafeMutableBytes { ferry_ioctl_pointer(fd, request, $0.baseAddress) }
            }
        }
        if case .failure(let code) = result { return code }
        return nil
    }

    public func unavailability(after errno: Errno) -> LiveUpdateUnavailability? {
        guard errno == .noSuchFileOrDirectory || errno == .noSuchAddressOrDevice || errno.rawValue == ENODEV else { return nil }
        return KernelBackend.diagnoseMissingDevice(commandLine: Self.readCommandLine(),
                                                   miscDeviceRegistered: Self.miscDeviceRegistered())
    }

    /// Tells why the node is missing from the kernel command line and /sys.
    public static func diagnoseMissingDevice(commandLine: String?, miscDeviceRegistered: Bool)
        -> LiveUpdateUnavailability
    {
        if miscDeviceRegistered { return .noDeviceNode }
        let words = (commandLine ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        func enabled(_ key: String) -> Bool {
            words.contains { ["\(key)=on", "\(key)=1", "\(key)=y", "\(key)=Y", "\(key)=yes", "\(key)=true"].contains($0) }
        }
        if commandLine != nil && !enabled("liveupdate") { return .bootedWithoutLiveUpdate }
        if commandLine != nil && !enabled("kho") { return .bootedWithoutKexecHandover }
        return .kernelWithoutLiveUpdate
    }

    static func readCommandLine() -> String? {
        FileIO.text(ofFile: "/proc/cmdline", limit: 65536).flatMap { $0.isEmpty ? nil : $0 }
    }

    static func miscDeviceRegistered() -> Bool {
        access("/sys/class/misc/liveupdate", F_OK) == 0
    }
}
