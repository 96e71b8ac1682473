import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A file the emulated kernel holds a reference to, as LUO holds its own struct file reference.
///
/// A class, so that sessions can share and drop it; it closes its descriptor when the last
/// reference goes (the emulated kernel's memory is this process).
final class HeldFile {
    let fd: CInt
    let key: FileKey

    init(adopting fd: consuming OwnedFD) throws(SystemCallError) {
        let raw = fd.release()
        do throws(SystemCallError) {
            key = try FileIdentity.inode(FileDescriptor(rawValue: raw))
        } catch {
            Glibc.close(raw)
            throw error
        }
        self.fd = raw
    }

    deinit { Glibc.close(fd) }

    var descriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
}
