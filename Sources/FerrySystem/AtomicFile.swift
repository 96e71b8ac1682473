import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Replaces a file so that a reader (node_exporter's textfile collector, the next ferryd after a
/// crash) sees either the old contents or the new, never a torn write.
public enum AtomicFile {
    /// Writes `bytes` to a temporary file beside `path` (same folder, so rename(2) stays on one
    /// filesystem), fsyncs it, renames it over `path`, and fsyncs the folder so the rename itself
    /// survives a power cut. The temporary name does not end like `path` (`.NAME.tmp`), so a
    /// collector that globs `*.prom` never reads a half-written file.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(SystemCallError) {
        let (folder, name) = split(path)
        let temporary = "\(folder)/.\(name).\(getpid()).tmp"
        let raw = try systemCall("open(\(temporary))") {
            Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        }
        let fd = OwnedFD(adopting: raw)
        do throws(SystemCallError) {
            try FileIO.writeAll(fd.borrowed, bytes)
            _ = try systemCall("fchmod(\(temporary))") { fchmod(fd.rawValue, mode) }
            _ = try systemCall("fsync(\(temporary))") { fsync(fd.rawValue) }
            _ = try systemCall("rename(\(temporary), \(path))") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
        syncFolder(folder)
    }

    /// Creates `path` and its missing parents (mkdir -p), each with `mode`.
    public static func makeFolders(_ path: String, mode: mode_t = 0o755) throws(SystemCallError) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/\(part)"
            if mkdir(prefix, mode) == -1 && errno != EEXIST {
                throw SystemCallError("mkdir(\(prefix))", Errno(rawValue: errno))
            }
        }
    }

    /// The folder and the last component; a bare name lives in ".".
    static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    /// Best effort: some filesystems refuse fsync on a folder, and the data is already safe.
    private static func syncFolder(_ folder: String) {
        let raw = Glibc.open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard raw >= 0 else { return }
        let fd = OwnedFD(adopting: raw)
        _ = fsync(fd.rawValue)
    }
}
