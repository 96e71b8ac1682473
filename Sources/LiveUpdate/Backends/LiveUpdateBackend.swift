import FerrySystem
import SystemPackage

/// Where /dev/liveupdate's behaviour comes from: the kernel, or the emulator that reproduces it.
///
/// A backend only opens the device and performs ioctls exactly as ioctl(2) would: the argument
/// bytes are read and written back in place, and a returned descriptor is written into the
/// struct's `fd` field. Every rule of LUO lives behind this line, in the kernel or the emulator.
public protocol LiveUpdateBackend: Sendable {
    /// A short name for messages: `kernel` or `emulator at PATH`.
    var name: String { get }

    /// Opens the device (`open("/dev/liveupdate", O_RDWR | O_CLOEXEC)` or its emulated twin).
    /// The caller owns the returned descriptor.
    func openDevice() -> Result<OwnedFD, Errno>

    /// Issues `request` on `fd` (the device or a session fd) with `argument` (nil: a NULL pointer).
    /// Returns nil on success or the errno.
    func ioctl(_ fd: CInt, request: UInt, argument: inout RequestBuffer?) -> Errno?

    /// Explains a failed open with ENOENT: which part of the system is missing.
    func unavailability(after errno: Errno) -> LiveUpdateUnavailability?
}
