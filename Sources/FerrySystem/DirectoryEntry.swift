#if canImport(Glibc)
import Glibc
#endif

/// The name of an entry readdir(3) returned, read up to its NUL.
///
/// Never `entry.pointee.d_name`: that copies the whole 256-byte array, but the kernel packs
/// entries by their real length (d_reclen), so the copy of the last one in readdir's buffer can
/// run past the buffer's end into an unmapped page (ferryd crashed so in a folder of 1,000 units).
public func directoryEntryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    return String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}
