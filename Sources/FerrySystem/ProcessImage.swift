import CFerry
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Replacing this process with another program, handing it descriptors at 3, 4, … (the s6 and
/// socket-activation style: `ferryctl session run` ends in it).
public enum ProcessImage {
    /// Moves each of `descriptors` to 3, 4, … (not close-on-exec there; everything else stays
    /// close-on-exec as it was), then executes `arguments[0]` (searched in `environment`'s PATH) with `environment`.
    /// Only returns on failure: the descriptors may then have been moved already.
    ///
    /// - Throws: the failed `fcntl`/`dup2`/`execve` with its errno.
    public static func replace(arguments: [String], environment: [String], descriptors: [CInt]) throws(SystemCallError) -> Never {
        // Out of the way first, so placing one never overwrites another not yet placed.
        var lifted: [CInt] = []
        for fd in descriptors {
            lifted.append(try systemCall("fcntl(F_DUPFD_CLOEXEC)") { ferry_fcntl_int(fd, F_DUPFD_CLOEXEC, 3 + CInt(descriptors.count)) })
        }
        for (index, fd) in lifted.enumerated() {
            let target = 3 + CInt(index)
            _ = try systemCall("dup2(\(fd), \(target))") { dup2(fd, target) }
            _ = close(fd)
        }
        let path = resolve(arguments[0], environment: environment)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        execve(path, &argv, &envp)
        let failure = Errno(rawValue: errno)
        for pointer in argv + envp { free(pointer) }
        throw SystemCallError("execve(\(path))", failure)
    }

    /// This process's environment as NAME=VALUE entries.
    public static func currentEnvironment() -> [String] {
        var entries: [String] = []
        var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = environ
        while let entry = cursor.pointee {
            entries.append(String(cString: entry))
            cursor += 1
        }
        return entries
    }

    /// `name` itself when it has a slash, else the first executable of that name in PATH.
    static func resolve(_ name: String, environment: [String]) -> String {
        guard !name.contains("/") else { return name }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where access("\(folder)/\(name)", X_OK) == 0 {
            return "\(folder)/\(name)"
        }
        return name
    }
}
