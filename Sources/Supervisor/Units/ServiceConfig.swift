import FDStore
import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// A service unit's settings, interpreted from its unit file.
public struct ServiceConfig: Sendable, Equatable {
    public enum ServiceType: String, Sendable { case simple, notify, oneshot, forking }
    /// Which processes a stop signals (systemd's KillMode=).
    public enum KillMode: String, Sendable {
        /// Every process of the unit.
        case controlGroup = "control-group"
        /// The main process only.
        case process
        /// SIGTERM to the main process, SIGKILL to every process that is left.
        case mixed
        /// No signals: ExecStop= alone stops the unit.
        case none
    }
    public enum RestartPolicy: String, Sendable { case no, onFailure = "on-failure", always }
    public enum NotifyAccess: String, Sendable { case none, main, exec, all }

    public var description = ""
    public var type: ServiceType = .simple
    public var remainAfterExit = false
    public var execStart: [ExecCommand] = []
    public var execStartPre: [ExecCommand] = []
    public var execStartPost: [ExecCommand] = []
    public var execStop: [ExecCommand] = []
    /// Type=forking: where the daemon writes its pid.
    public var pidFile: String?
    public var killMode: KillMode = .controlGroup
    /// Nil until set: 90 s, or no limit for Type=oneshot (as systemd).
    public var explicitStartTimeout: Duration?
    /// [Unit] dependencies, as written (services, and targets such as network.target).
    public var requires: [String] = []
    public var wants: [String] = []
    public var after: [String] = []
    public var before: [String] = []
    public var conflicts: [String] = []
    /// X-FerryRequired= (a key systemd ignores): a live update that would lose any of this
    /// unit's stored fds aborts and rolls back before the point of no return.
    public var ferryRequired = false
    /// X-FerryPrepare= and its settings: asked before a live update stops anything (LiveUpdateKeys.swift).
    public var prepareBarrier = PrepareBarrierConfig()
    /// X-FerryFDGroup=: fds preserved all-or-nothing, in the declared order.
    public var fdGroups: [FDGroup] = []
    /// [Install]
    public var wantedBy: [String] = []
    public var requiredBy: [String] = []
    public var restart: RestartPolicy = .no
    public var restartDelay: Duration = .milliseconds(100)
    public var startLimitBurst = 5
    public var startLimitInterval: Duration = .seconds(10)
    /// Environment= assignments, in order (later ones win).
    public var environment: [(String, String)] = []
    /// EnvironmentFile= paths; `optional` when written with a leading `-`.
    public var environmentFiles: [(path: String, optional: Bool)] = []
    public var workingDirectory: String?
    public var user: String?
    public var group: String?
    public var stopTimeout: Duration = .seconds(90)
    public var fdStoreMax = 0
    public var fdStorePreserve: PreserveMode = .restart
    /// Nil until set: the default depends on Type= and FileDescriptorStoreMax=.
    public var explicitNotifyAccess: NotifyAccess?

    /// TimeoutStartSec= as in effect; nil means no limit.
    public var startTimeout: Duration? {
        let limit = explicitStartTimeout ?? (type == .oneshot ? nil : .seconds(90))
        return limit.flatMap { $0 == .zero || $0 >= Values.infinity ? nil : $0 }
    }

    /// NotifyAccess= as in effect: `main` for notify services, services with a store and services
    /// that answer the prepare barrier, else none.
    public var notifyAccess: NotifyAccess {
        if let explicitNotifyAccess { return explicitNotifyAccess }
        return type == .notify || fdStoreMax > 0 || prepareBarrier.enabled ? .main : .none
    }

    public static func == (a: ServiceConfig, b: ServiceConfig) -> Bool {
        a.description == b.description && a.type == b.type && a.execStart == b.execStart && a.restart == b.restart
            && a.fdStoreMax == b.fdStoreMax && a.fdStorePreserve == b.fdStorePreserve
            && a.environment.map { "\($0)=\($1)" } == b.environment.map { "\($0)=\($1)" }
    }

    public init() {}

    /// Interprets `file` for `unit`; problems (unknown keys, bad values) become warnings, not errors.
    public static func interpret(_ file: UnitFile, unit: UnitName) -> (ServiceConfig, [String]) {
        var config = ServiceConfig()
        var warnings = file.warnings
        let specifiers = Specifiers(unit: unit)
        func expanded(_ assignment: UnitFile.Assignment) -> String {
            specifiers.expand(assignment.value, warnings: &warnings, line: assignment.line)
        }
        for (section, assignments) in file.sections {
            for assignment in assignments {
                let value = expanded(assignment)
                let problem = config.apply(section: section, key: assignment.key, value: value)
                if let problem { warnings.append("line \(assignment.line): \(problem)") }
            }
        }
        // Exec*= lines are interpreted last: their variables come from Environment= wherever it stands.
        let environment = Dictionary(config.environment, uniquingKeysWith: { _, last in last })
        let commands: [(String, WritableKeyPath<ServiceConfig, [ExecCommand]>)] = [
            ("ExecStart", \.execStart), ("ExecStartPre", \.execStartPre), ("ExecStartPost", \.execStartPost),
            ("ExecStop", \.execStop),
        ]
        for (key, path) in commands {
            for assignment in file.values("Service", key) {
                let value = expanded(assignment)
                if value.isEmpty {
                    config[keyPath: path] = []
                    continue
                }
                switch ExecCommand.parse(value, environment: environment) {
                case .success(let command):
                    config[keyPath: path].append(command)
                    if !command.path.hasPrefix("/") {
                        warnings.append("line \(assignment.line): \(key)=: program '\(command.path)' is not found in "
                                        + "\(ExecCommand.searchPath.joined(separator: ":")); starting fails with ENOENT until it is installed")
                    }
                case .failure(let error): warnings.append("line \(assignment.line): \(key)=: \(error)")
                }
            }
        }
        if config.execStart.count > 1 && config.type != .oneshot {
            warnings.append("several ExecStart= lines are only allowed with Type=oneshot; using the first")
            config.execStart = Array(config.execStart.prefix(1))
        }
        return (config, warnings)
    }

    /// Applies one assignment; returns a warning text when it is unknown or invalid.
    private mutating func apply(section: String, key: String, value: String) -> String? {
        switch (section, key) {
        case ("Unit", "Description"): description = value
        case ("Unit", "StartLimitBurst"), ("Service", "StartLimitBurst"):
            guard let count = Values.count(value) else { return "StartLimitBurst=\(value) is not a number, ignored" }
            startLimitBurst = count
        case ("Unit", "StartLimitIntervalSec"), ("Service", "StartLimitIntervalSec"):
            guard let duration = Values.duration(value) else { return "StartLimitIntervalSec=\(value) is not a time, ignored" }
            startLimitInterval = duration
        case ("Service", "ExecStart"), ("Service", "ExecStartPre"), ("Service", "ExecStartPost"), ("Service", "ExecStop"):
            break  // interpreted after every Environment=
        case ("Service", "PIDFile"): pidFile = value.isEmpty ? nil : value
        case ("Service", "KillMode"):
            guard let mode = KillMode(rawValue: value) else { return "KillMode=\(value) is not control-group, process, mixed or none, ignored" }
            killMode = mode
        case ("Service", "TimeoutStartSec"), ("Service", "TimeoutSec"):
            guard let duration = Values.duration(value) else { return "\(key)=\(value) is not a time, ignored" }
            explicitStartTimeout = duration
            if key == "TimeoutSec" { stopTimeout = duration }
        case ("Unit", "Requires"), ("Unit", "Wants"), ("Unit", "After"), ("Unit", "Before"), ("Unit", "Conflicts"),
             ("Install", "WantedBy"), ("Install", "RequiredBy"):
            return addNames(value, to: Self.dependencyList(key), key: key)
        case ("Service", let ferryKey) where ferryKey.hasPrefix("X-Ferry"):
            return applyLiveUpdateKey(ferryKey, value: value)
        case (_, let other) where other.hasPrefix("X-"):
            break  // extensions for other tools, as systemd ignores them
        case ("Install", "Alias"), ("Install", "Also"), ("Install", "DefaultInstance"),
             ("Unit", "Documentation"), ("Unit", "DefaultDependencies"):
            break  // accepted; nothing for ferryd to do with them
        case ("Service", "Type"):
            guard let parsed = ServiceType(rawValue: value) else { return "Type=\(value) is not supported (simple, notify, oneshot, forking), ignored" }
            type = parsed
        case ("Service", "RemainAfterExit"):
            guard let flag = Values.boolean(value) else { return "RemainAfterExit=\(value) is not a boolean, ignored" }
            remainAfterExit = flag
        case ("Service", "Restart"):
            guard let policy = RestartPolicy(rawValue: value) else { return "Restart=\(value) is not supported (no, on-failure, always), ignored" }
            restart = policy
        case ("Service", "RestartSec"):
            guard let duration = Values.duration(value) else { return "RestartSec=\(value) is not a time, ignored" }
            restartDelay = duration
        case ("Service", "Environment"):
            if value.isEmpty {
                environment = []
                return nil
            }
            let words: [String]
            do throws(Words.Failure) { words = try Words.split(value) } catch { return "Environment=: \(error), ignored" }
            for word in words {
                guard let equals = word.firstIndex(of: "="), equals != word.startIndex else {
                    return "Environment=: '\(word)' is not NAME=VALUE, ignored"
                }
                environment.append((String(word[..<equals]), String(word[word.index(after: equals)...])))
            }
        case ("Service", "EnvironmentFile"):
            if value.isEmpty {
                environmentFiles = []
            } else if value.hasPrefix("-") {
                environmentFiles.append((String(value.dropFirst()), true))
            } else {
                environmentFiles.append((value, false))
            }
        case ("Service", "WorkingDirectory"):
            workingDirectory = value.isEmpty ? nil : (value.hasPrefix("-") ? String(value.dropFirst()) : value)
        case ("Service", "User"): user = value.isEmpty ? nil : value
        case ("Service", "Group"): group = value.isEmpty ? nil : value
        case ("Service", "TimeoutStopSec"):
            guard let duration = Values.duration(value) else { return "TimeoutStopSec=\(value) is not a time, ignored" }
            stopTimeout = duration
        case ("Service", "FileDescriptorStoreMax"):
            guard let count = Values.count(value) else { return "FileDescriptorStoreMax=\(value) is not a number, ignored" }
            fdStoreMax = count
        case ("Service", "FileDescriptorStorePreserve"):
            if let flag = Values.boolean(value) {
                fdStorePreserve = flag ? .yes : .no
            } else if let mode = PreserveMode(rawValue: value) {
                fdStorePreserve = mode
            } else {
                return "FileDescriptorStorePreserve=\(value) is not no, restart, yes or on-success, ignored"
            }
        case ("Service", "NotifyAccess"):
            guard let access = NotifyAccess(rawValue: value) else { return "NotifyAccess=\(value) is not none, main, exec or all, ignored" }
            explicitNotifyAccess = access
        default:
            return "unknown setting \(key)= in [\(section)], ignored"
        }
        return nil
    }

    static func dependencyList(_ key: String) -> WritableKeyPath<ServiceConfig, [String]> {
        switch key {
        case "Requires": \.requires
        case "Wants": \.wants
        case "After": \.after
        case "Before": \.before
        case "Conflicts": \.conflicts
        case "WantedBy": \.wantedBy
        default: \.requiredBy
        }
    }

    /// A space-separated list of unit names; an empty value clears the list, as in systemd.
    private mutating func addNames(_ value: String, to list: WritableKeyPath<ServiceConfig, [String]>, key: String) -> String? {
        let names = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if names.isEmpty {
            self[keyPath: list] = []
            return nil
        }
        var bad: [String] = []
        for name in names {
            if UnitReference.isValid(name) {
                if !self[keyPath: list].contains(name) { self[keyPath: list].append(name) }
            } else {
                bad.append(name)
            }
        }
        return bad.isEmpty ? nil : "\(key)=: '\(bad.joined(separator: " "))' is not a unit name, ignored"
    }

    /// The environment for a process: Environment= assignments, then EnvironmentFile= contents.
    ///
    /// - Throws: a message naming a required EnvironmentFile= that cannot be read.
    public func resolvedEnvironment() throws(ParseError) -> [(String, String)] {
        var result = environment
        for file in environmentFiles {
            guard let text = readFile(file.path) else {
                if file.optional { continue }
                throw ParseError("EnvironmentFile=\(file.path) cannot be read")
            }
            for raw in text.split(separator: "\n") {
                let line = String(raw).trimmingWhitespace()
                if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
                guard let equals = line.firstIndex(of: "=") else { continue }
                let key = String(line[..<equals]).trimmingWhitespace()
                var value = String(line[line.index(after: equals)...]).trimmingWhitespace()
                if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                    value = String(value.dropFirst().dropLast())
                }
                result.append((key, value))
            }
        }
        return result
    }
}

/// Reads a whole (small) file, nil when it cannot.
func readFile(_ path: String) -> String? { FileIO.text(ofFile: path) }
