import FerrySystem

/// Who may have brokered sessions, how many and how big, and what happens to sessions carried
/// across a kexec that nobody takes back. Read from a small line-based file (README, "Brokered
/// LUO sessions"):
///
///     # first matching rule wins; a client no rule matches is refused
///     allow uid=65534 sessions=4 files=64 bytes=256M
///     allow unit=vmm.service sessions=8
///     deny uid=1000
///     unclaimed-after 10min
///     unclaimed-action finish
///
/// A rule's matchers (`uid=N` or `uid=*`, `unit=NAME`, `cgroup=PREFIX`) must all hold; its
/// quotas (`sessions=`, `files=`, `bytes=` with K/M/G suffixes) fall back to the defaults.
public struct BrokerPolicy: Sendable, Equatable {
    public struct Quota: Sendable, Equatable {
        /// Outgoing sessions one client may hold at once.
        public var sessions = 8
        /// Files one session may take through the broker's Preserve.
        public var files = 256
        /// Bytes of memfds one client may pin through the broker's Preserve, all sessions together.
        public var bytes: Int64 = 1 << 30
        public init() {}
    }

    public struct Rule: Sendable, Equatable {
        public var allow: Bool
        public var uid: UInt32?
        public var unit: String?
        public var cgroupPrefix: String?
        public var quota = Quota()
        /// Where it was written, for refusals ("policy line 3").
        public var line: Int

        func matches(_ client: ClientIdentity) -> Bool {
            if let uid, uid != client.uid { return false }
            if let unit, unit != client.unit { return false }
            if let cgroupPrefix, !(client.cgroup ?? "").hasPrefix(cgroupPrefix) { return false }
            return true
        }
    }

    /// What to do with an incoming session nobody retrieved in time.
    public enum UnclaimedAction: String, Sendable { case report, finish }

    public var rules: [Rule]
    public var unclaimedAfter: Duration = .seconds(600)
    public var unclaimedAction = UnclaimedAction.report
    /// Where it came from ("built-in: root only" when no file).
    public var source: String

    /// Without a file only root may have sessions.
    public static let builtIn = BrokerPolicy(rules: [Rule(allow: true, uid: 0, line: 0)], source: "built-in (root only)")

    public enum Decision: Equatable {
        case allowed(Quota)
        case refused(String)
    }

    /// The first rule that matches decides; no rule refuses.
    public func decide(for client: ClientIdentity) -> Decision {
        guard let rule = rules.first(where: { $0.matches(client) }) else {
            return .refused("no rule of the broker policy (\(source)) allows \(client)")
        }
        return rule.allow ? .allowed(rule.quota) : .refused("the broker policy (\(source) line \(rule.line)) denies \(client)")
    }

    /// Reads `path`: the built-in policy if there is no file; problems are returned as warnings
    /// (a bad line is skipped, never widened into an allow).
    public static func load(path: String) -> (BrokerPolicy, [String]) {
        guard let text = FileIO.text(ofFile: path, limit: 1 << 20) else { return (builtIn, []) }
        return parse(text, source: path)
    }

    public static func parse(_ text: String, source: String) -> (BrokerPolicy, [String]) {
        var policy = BrokerPolicy(rules: [], source: source)
        var warnings: [String] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first else { continue }
            if let problem = policy.apply(keyword, Array(words.dropFirst()), line: index + 1) {
                warnings.append("\(source) line \(index + 1): \(problem), line ignored")
            }
        }
        return (policy, warnings)
    }

    private mutating func apply(_ keyword: String, _ arguments: [String], line: Int) -> String? {
        switch keyword {
        case "allow", "deny":
            var rule = Rule(allow: keyword == "allow", line: line)
            for argument in arguments {
                if let problem = rule.set(argument) { return problem }
            }
            rules.append(rule)
        case "unclaimed-after":
            guard arguments.count == 1, let duration = Self.duration(arguments[0]) else { return "unclaimed-after needs one time (300, 5min, 1h)" }
            unclaimedAfter = duration
        case "unclaimed-action":
            guard arguments.count == 1, let action = UnclaimedAction(rawValue: arguments[0]) else { return "unclaimed-action is report or finish" }
            unclaimedAction = action
        default:
            return "unknown keyword '\(keyword)'"
        }
        return nil
    }

    static func duration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("min", 60), ("ms", 0), ("s", 1), ("h", 3600)]
        for (suffix, seconds) in units where text.hasSuffix(suffix) {
            guard let value = Int64(text.dropLast(suffix.count)), value >= 0 else { return nil }
            return seconds == 0 ? .milliseconds(value) : .seconds(value * seconds)
        }
        return Int64(text).flatMap { $0 >= 0 ? .seconds($0) : nil }
    }

    static func size(_ text: String) -> Int64? {
        let scale: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.last, let factor = scale[last] {
            return Int64(text.dropLast()).flatMap { $0 >= 0 ? $0.multipliedReportingOverflow(by: factor).partialValue : nil }
        }
        return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
    }
}

extension BrokerPolicy.Rule {
    fileprivate mutating func set(_ argument: String) -> String? {
        guard let equals = argument.firstIndex(of: "=") else { return "'\(argument)' is not KEY=VALUE" }
        let key = argument[..<equals]
        let value = String(argument[argument.index(after: equals)...])
        switch key {
        case "uid":
            if value == "*" { uid = nil } else {
                guard let number = UInt32(value) else { return "uid=\(value) is not a number or *" }
                uid = number
            }
        case "unit": unit = value
        case "cgroup": cgroupPrefix = value
        case "sessions", "files":
            guard let count = Int(value), count >= 0 else { return "\(key)=\(value) is not a count" }
            if key == "sessions" { quota.sessions = count } else { quota.files = count }
        case "bytes":
            guard let bytes = BrokerPolicy.size(value) else { return "bytes=\(value) is not a size (64M, 1G)" }
            quota.bytes = bytes
        default:
            return "unknown key '\(key)'"
        }
        return nil
    }
}
