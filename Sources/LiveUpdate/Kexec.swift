import CFerry
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Loading the next kernel and rebooting into it. LUO needs `kexec_file_load`: only the in-kernel
/// file loader hands the KHO data to the next kernel.
public enum Kexec {
    /// Loads `kernel` (and `initrd`) with `commandLine` for a later `reboot()`.
    ///
    /// The corresponding system call is `kexec_file_load`. EPERM without CAP_SYS_BOOT; ENOSYS or
    /// EINVAL on kernels without KEXEC_FILE; ENOEXEC for an image it cannot boot.
    public static func load(kernel: String, initrd: String?, commandLine: String) throws(SystemCallError) {
        let kernelFD = try openForReading(kernel)
        var initrdFD: OwnedFD? = nil
        if let initrd { initrdFD = try openForReading(initrd) }
        let initrdRaw = initrdFD?.rawValue ?? -1
        let flags: UInt = initrd == nil ? UInt(KEXEC_FILE_NO_INITRAMFS) : 0
        _ = try systemCall("kexec_file_load(\(kernel))") {
            commandLine.withCString { ferry_kexec_file_load(kernelFD.rawValue, initrdRaw, $0, flags) }
        }
    }

    /// Unloads a loaded kernel.
    public static func unload() throws(SystemCallError) {
        _ = try systemCall("kexec_file_load(KEXEC_FILE_UNLOAD)") {
            ferry_kexec_file_load(-1, -1, nil, UInt(KEXEC_FILE_UNLOAD))
        }
    }

    /// Whether a kernel is loaded (`/sys/kernel/kexec_loaded`).
    public static var isLoaded: Bool {
        let fd = open("/sys/kernel/kexec_loaded", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let owned = OwnedFD(adopting: fd)
        var byte: UInt8 = 0
        return read(owned.rawValue, &byte, 1) == 1 && byte == UInt8(ascii: "1")
    }

    /// Reboots into the loaded kernel. On success it does not return.
    ///
    /// The corresponding call is `reboot(LINUX_REBOOT_CMD_KEXEC)`. LUO's freeze errors come back
    /// here (the update is then cancelled and every session stays as it was); EINVAL when no
    /// kernel is loaded.
    public static func reboot() throws(SystemCallError) {
        sync()
        _ = try systemCall("reboot(LINUX_REBOOT_CMD_KEXEC)") { ferry_reboot(UInt32(LINUX_REBOOT_CMD_KEXEC)) }
    }

    /// The running kernel's command line, for `--reuse-cmdline`.
    public static func currentCommandLine() -> String? {
        KernelBackend.readCommandLine()?.trimmingSuffix("\n")
    }

    private static func openForReading(_ path: String) throws(SystemCallError) -> OwnedFD {
        OwnedFD(adopting: try systemCall("open(\(path))") { path.withCString { open($0, O_RDONLY | O_CLOEXEC) } })
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
