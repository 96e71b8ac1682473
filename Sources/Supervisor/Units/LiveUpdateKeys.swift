import FDStore

#if canImport(Glibc)
import Glibc
#endif

/// Ferry's own `[Service]` keys for live updates. Each starts with `X-`, which systemd ignores, so
/// the same unit file runs unchanged under systemd.
///
/// - `X-FerryPrepare=yes`: the unit is asked to prepare before a live update stops anything, and
///   must answer on `$NOTIFY_SOCKET` (docs/prepare-barrier.md).
/// - `X-FerryPrepareSignal=`, `X-FerryResumeSignal=`: how it is asked, and told to carry on when the
///   update is abandoned (default `SIGRTMIN+4`, `SIGRTMIN+5`).
/// - `X-FerryPrepareTimeoutSec=`: how long its answer may take (default 10 s).
/// - `X-FerryFDGroup=NAME PATTERN…`: stored fds whose names match the patterns (in that order) are
///   preserved all-or-nothing in that order, and retrieved in reverse after the kexec.
public struct PrepareBarrierConfig: Sendable, Equatable {
    public var enabled = false
    /// Offsets from SIGRTMIN, or plain signal numbers; resolved when sent (`SignalName`).
    public var prepareSignal = SignalName.realtime(4)
    public var resumeSignal = SignalName.realtime(5)
    public var timeout: Duration = .seconds(10)
    public init() {}
}

/// Stored fds preserved together: members in the order of the first pattern each name matches,
/// fds matching the same pattern in store order.
public struct FDGroup: Sendable, Equatable {
    public var name: String
    /// fnmatch(3) patterns matched against FDNAME.
    public var patterns: [String]

    public init(name: String, patterns: [String]) {
        self.name = name
        self.patterns = patterns
    }

    /// The index of the first pattern `fdName` matches, nil when it is not a member.
    public func position(of fdName: String) -> Int? {
        patterns.firstIndex { fnmatch($0, fdName, 0) == 0 }
    }
}

/// A signal as a unit file names it: `SIGUSR2`, `USR2`, `SIGRTMIN+4`, `RTMIN+4`, or a number.
/// Realtime signals stay relative to SIGRTMIN, which glibc decides at run time.
public enum SignalName: Sendable, Equatable, CustomStringConvertible {
    case number(CInt)
    case realtime(CInt)

    static let named: [String: CInt] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "USR1": SIGUSR1, "USR2": SIGUSR2, "TERM": SIGTERM,
        "CONT": SIGCONT, "WINCH": SIGWINCH, "PWR": SIGPWR,
    ]

    public init?(_ text: String) {
        var name = Substring(text.trimmingWhitespace().uppercased())
        if name.hasPrefix("SIG") { name = name.dropFirst(3) }
        if let number = CInt(name) {
            guard number > 0, number < 65 else { return nil }
            self = .number(number)
        } else if name.hasPrefix("RTMIN") {
            let offset = name.dropFirst(5)
            guard let value = offset.isEmpty ? 0 : (offset.first == "+" ? CInt(offset.dropFirst()) : nil),
                value >= 0, value <= __libc_current_sigrtmax() - __libc_current_sigrtmin()
            else { return nil }
            self = .realtime(value)
        } else if let number = Self.named[String(name)] {
            self = .number(number)
        } else {
            return nil
        }
    }

    public var number: CInt {
        switch self {
        case .number(let value): value
        case .realtime(let offset): __libc_current_sigrtmin() + offset
        }
    }

    public var description: String {
        switch self {
        case .number(let value): Self.named.first { $0.value == value }.map { "SIG\($0.key)" } ?? "\(value)"
        case .realtime(let offset): offset == 0 ? "SIGRTMIN" : "SIGRTMIN+\(offset)"
        }
    }
}

extension ServiceConfig {
    /// Applies one of Ferry's `X-Ferry…` keys; returns a warning, or nil when it was applied.
    mutating func applyLiveUpdateKey(_ key: String, value: String) -> String? {
        switch key {
        case "X-FerryRequired":
            guard let flag = Values.boolean(value) else { return "X-FerryRequired=\(value) is not a boolean, ignored" }
            ferryRequired = flag
        case "X-FerryPrepare":
            guard let flag = Values.boolean(value) else { return "X-FerryPrepare=\(value) is not a boolean, ignored" }
            prepareBarrier.enabled = flag
        case "X-FerryPrepareSignal", "X-FerryResumeSignal":
            guard let signal = SignalName(value) else { return "\(key)=\(value) is not a signal (e.g. SIGRTMIN+4, SIGUSR2), ignored" }
            if key == "X-FerryPrepareSignal" { prepareBarrier.prepareSignal = signal } else { prepareBarrier.resumeSignal = signal }
        case "X-FerryPrepareTimeoutSec":
            guard let duration = Values.duration(value), duration > .zero else { return "X-FerryPrepareTimeoutSec=\(value) is not a time, ignored" }
            prepareBarrier.timeout = duration
        case "X-FerryFDGroup":
            return addFDGroup(value)
        default:
            // A misspelt key would silently opt out (X-FerryPrepair=yes): say so.
            return "unknown Ferry setting \(key)= in [Service], ignored"
        }
        return nil
    }

    /// `NAME PATTERN…`; an empty value clears every group, as list settings do in systemd.
    private mutating func addFDGroup(_ value: String) -> String? {
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let name = words.first else {
            fdGroups = []
            return nil
        }
        guard words.count > 1 else { return "X-FerryFDGroup=\(value): a group needs a name and at least one fd name pattern, ignored" }
        guard FDName.isValid(name) else { return "X-FerryFDGroup=: '\(name)' is not a valid group name, ignored" }
        let group = FDGroup(name: name, patterns: Array(words.dropFirst()))
        if let index = fdGroups.firstIndex(where: { $0.name == name }) {
            fdGroups[index] = group
            return "X-FerryFDGroup=: group '\(name)' declared again; the later line wins"
        }
        fdGroups.append(group)
        return nil
    }

    /// The group `fdName` belongs to (the first declared one it matches) and its place there.
    public func fdGroup(of fdName: String) -> (group: FDGroup, position: Int)? {
        for group in fdGroups {
            if let position = group.position(of: fdName) { return (group, position) }
        }
        return nil
    }
}
