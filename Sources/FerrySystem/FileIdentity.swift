import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a descriptor refers to, read without side effects on it.
public enum FileIdentity {
    public static func stat(_ fd: FileDescriptor) throws(SystemCallError) -> Glibc.stat {
        var buffer = Glibc.stat()
        _ = try systemCall("fstat") { Glibc.fstat(fd.rawValue, &buffer) }
        return buffer
    }

    /// The file system magic (`f_type` of fstatfs), e.g. TMPFS_MAGIC for a memfd.
    public static func fileSystemMagic(_ fd: FileDescriptor) throws(SystemCallError) -> UInt {
        var buffer = statfs()
        _ = try systemCall("fstatfs") { fstatfs(fd.rawValue, &buffer) }
        return UInt(bitPattern: Int(buffer.f_type))
    }

    /// The `/proc/self/fd/N` link text, e.g. `/memfd:state (deleted)` or `anon_inode:[luo_session] x`.
    ///
    /// Long anon_inode names fail with ENAMETOOLONG in the kernel itself; that error is returned as is.
    public static func linkText(_ fd: FileDescriptor) throws(SystemCallError) -> String {
        let path = "/proc/self/fd/\(fd.rawValue)"
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = try systemCall("readlink(\(path))") {
            buffer.withUnsafeMutableBufferPointer { out in
                path.withCString { Glibc.readlink($0, UnsafeMutableRawPointer(out.baseAddress!).assumingMemoryBound(to: CChar.self), out.count) }
            }
        }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// The (device, inode) pair: equal for every descriptor of one file.
    public static func inode(_ fd: FileDescriptor) throws(SystemCallError) -> FileKey {
        let status = try stat(fd)
        return FileKey(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Whether two descriptors of this process share one open file description (kcmp KCMP_FILE).
    public static func sameOpenFile(_ a: FileDescriptor, _ b: FileDescriptor) throws(SystemCallError) -> Bool {
        let pid = Int(getpid())
        let result = try systemCall("kcmp(KCMP_FILE)") {
            ferry_syscall5(Int(SYS_kcmp), pid, pid, Int(KCMP_FILE.rawValue), Int(a.rawValue), Int(b.rawValue))
        }
        return result == 0
    }
}

/// Identifies a file (not an open file description): its device and inode numbers.
public struct FileKey: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
    public var description: String { "dev \(device) ino \(inode)" }
}
