#if canImport(Glibc)
import Glibc
#endif

/// Prometheus's `promtool check metrics` (Debian package `prometheus`), and a reader of samples.
public enum Promtool {
    public static func check(_ text: String) throws -> (status: CInt, output: String) {
        let folder = TemporaryDirectory("ferry-promtool")
        folder.write("metrics.prom", text)
        let child = try Child.spawn(["/bin/sh", "-c", "exec promtool check metrics < \(folder.path)/metrics.prom"])
        let status = child.wait()
        return (status, child.output)
    }

    /// `name{labels}` → value, for every sample line.
    public static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}

/// xmllint (Debian package libxml2-utils) as the judge of well-formed XML.
public enum XML {
    public static func isWellFormed(_ text: String) throws -> Bool {
        let folder = TemporaryDirectory("ferry-svg")
        folder.write("timeline.svg", text)
        let child = try Child.spawn(["/usr/bin/xmllint", "--noout", "\(folder.path)/timeline.svg"])
        return child.wait() == 0
    }
}
