import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// memfds: anonymous shared-memory files, the kind of file LUO preserves today.
public enum Memfd {
    /// Seal bits as F_ADD_SEALS takes them.
    public struct Seals: OptionSet, Hashable, Sendable {
        public let rawValue: CInt
        public init(rawValue: CInt) { self.rawValue = rawValue }
        public static let seal = Seals(rawValue: ferry_F_SEAL_SEAL)
        public static let shrink = Seals(rawValue: ferry_F_SEAL_SHRINK)
        public static let grow = Seals(rawValue: ferry_F_SEAL_GROW)
        public static let write = Seals(rawValue: ferry_F_SEAL_WRITE)
        public static let futureWrite = Seals(rawValue: ferry_F_SEAL_FUTURE_WRITE)
        public static let exec = Seals(rawValue: ferry_F_SEAL_EXEC)
    }

    /// Creates a close-on-exec memfd. The caller owns the returned descriptor.
    ///
    /// - Parameters:
    ///   - name: shown in `/proc/self/fd` as `/memfd:NAME (deleted)`; at most 249 bytes.
    ///   - allowSealing: `MFD_ALLOW_SEALING`; without it the memfd starts with `F_SEAL_SEAL`.
    ///   - hugeTLB: `MFD_HUGETLB`, which LUO refuses to preserve.
    /// The corresponding C function is `memfd_create`.
    public static func create(
        name: String, allowSealing: Bool = true, hugeTLB: Bool = false
    ) throws(SystemCallError) -> OwnedFD {
        var flags = UInt32(MFD_CLOEXEC)
        if allowSealing { flags |= UInt32(MFD_ALLOW_SEALING) }
        if hugeTLB { flags |= UInt32(MFD_HUGETLB) }
        let fd = try systemCall("memfd_create(\(name))") {
            name.withCString { ferry_memfd_create($0, flags) }
        }
        return OwnedFD(adopting: fd)
    }

    /// Creates a memfd holding `contents`, with the file offset left at the end.
    public static func create(name: String, contents: [UInt8], allowSealing: Bool = true)
        throws(SystemCallError) -> OwnedFD
    {
        let fd = try create(name: name, allowSealing: allowSealing)
        try FileIO.writeAll(fd.borrowed, contents)
        return fd
    }

    public static func seals(of fd: FileDescriptor) throws(SystemCallError) -> Seals {
        Seals(rawValue: try systemCall("fcntl(F_GET_SEALS)") { ferry_fcntl(fd.rawValue, ferry_F_GET_SEALS) })
    }

    public static func addSeals(_ seals: Seals, to fd: FileDescriptor) throws(SystemCallError) {
        _ = try systemCall("fcntl(F_ADD_SEALS)") { ferry_fcntl_int(fd.rawValue, ferry_F_ADD_SEALS, seals.rawValue) }
    }
}

/// Whole-file reads and writes, sizes and offsets on any descriptor.
public enum FileIO {
    /// Writes every byte at the current offset, looping over short writes.
    public static func writeAll(_ fd: FileDescriptor, _ bytes: [UInt8]) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = try systemCall("write") {
                bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress! + done, $0.count - done) }
            }
            if written == 0 { throw SystemCallError("write", .noSpace) }
            done += written
        }
    }

    /// Writes every byte at `offset` without moving the file offset.
    public static func writeAll(_ fd: FileDescriptor, _ bytes: [UInt8], at offset: Int64) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = try systemCall("pwrite") {
                bytes.withUnsafeBytes {
                    Glibc.pwrite(fd.rawValue, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done))
                }
            }
            if written == 0 { throw SystemCallError("pwrite", .noSpace) }
            done += written
        }
    }

    /// Reads the whole file from offset 0 without moving the file offset.
    public static func readAll(_ fd: FileDescriptor) throws(SystemCallError) -> [UInt8] {
        let total = Int(try size(of: fd))
        var bytes = [UInt8](repeating: 0, count: total)
        var done = 0
        while done < total {
            let read = try systemCall("pread") {
                bytes.withUnsafeMutableBytes {
                    Glibc.pread(fd.rawValue, $0.baseAddress! + done, total - done, off_t(done))
                }
            }
            if read == 0 { break }
            done += read
        }
        return Array(bytes[0..<done])
    }

    public static func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 {
        Int64(try FileIdentity.stat(fd).st_size)
    }

    public static func truncate(_ fd: FileDescriptor, to size: Int64) throws(SystemCallError) {
        _ = try systemCall("ftruncate") { Glibc.ftruncate(fd.rawValue, off_t(size)) }
    }

    /// The current file offset (lseek SEEK_CUR).
    public static func offset(of fd: FileDescriptor) throws(SystemCallError) -> Int64 {
        Int64(try systemCall("lseek") { Glibc.lseek(fd.rawValue, 0, SEEK_CUR) })
    }

    public static func seek(_ fd: FileDescriptor, to offset: Int64) throws(SystemCallError) {
        _ = try systemCall("lseek") { Glibc.lseek(fd.rawValue, off_t(offset), SEEK_SET) }
    }

    /// The whole text of a small file (a unit file, /proc/cmdline), nil when it cannot be read or
    /// is larger than `limit` bytes.
    public static func text(ofFile path: String, limit: Int = 4 << 20) -> String? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let owned = OwnedFD(adopting: fd)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case .success(let count) = systemCallResult({ Glibc.read(owned.rawValue, &chunk, chunk.count) }), count > 0 {
            bytes += chunk[0..<count]
            if bytes.count > limit { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The open flags (F_GETFL), e.g. O_RDWR | O_LARGEFILE.
    public static func statusFlags(of fd: FileDescriptor) throws(SystemCallError) -> CInt {
        try systemCall("fcntl(F_GETFL)") { ferry_fcntl(fd.rawValue, F_GETFL) }
    }
}
