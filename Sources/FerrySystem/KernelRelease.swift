#if canImport(Glibc)
import Glibc
#endif

/// What kernel this is, as the operator knows it: uname(2)'s release (`7.2.13-ferry`).
public enum KernelRelease {
    public static func current() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
