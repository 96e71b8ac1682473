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
        return KernelFacts.current(devicePath: devicePath).whyDeviceIsMissing
    }

    static func readCommandLine() -> String? {
        FileIO.text(ofFile: "/proc/cmdline", limit: 65536).flatMap { $0.isEmpty ? nil : $0 }
    }
}
