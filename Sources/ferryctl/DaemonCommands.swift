import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// How to reach ferryd, and how to print its answers.
struct ControlOptions: ParsableArguments {
    @Option(help: "ferryd's control socket (default: $FERRY_CONTROL or /run/ferry/control).")
    var control: String?

    @Flag(help: "Print JSON instead of text; errors too, as one JSON object on stdout.")
    var json = false

    var path: String {
        if let control { return control }
        if let value = getenv("FERRY_CONTROL") { return String(cString: value) }
        return "/run/ferry/control"
    }

    /// The subcommand, for messages ("stop needs root").
    static var command: String { CommandLine.arguments.dropFirst().first { !$0.hasPrefix("-") } ?? "ferryctl" }

    /// Calls ferryd; a Varlink error becomes a `Failure` in words (with systemctl's exit status).
    func call(_ method: String, _ parameters: [String: JSONValue] = [:], unit: String? = nil) throws -> [String: JSONValue] {
        let reply = try rawCall(method, parameters)
        if reply.error != nil {
            throw Failure.fromReply(reply, method: method.contains(".") ? method : "io.ferry.Manager.\(method)", unit: unit, command: Self.command)
        }
        return reply.parameters
    }

    /// Calls ferryd and returns its reply as it is, error replies included.
    func rawCall(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> Varlink.Reply {
        var client: VarlinkClient
        do throws(SystemCallError) {
            client = try VarlinkClient(path: path)
        } catch {
            throw Failure.cannotConnect(path, error.errno)
        }
        do throws(SystemCallError) {
            return try client.call(Varlink.Call(method: method.contains(".") ? method : "io.ferry.Manager.\(method)",
                                                parameters: parameters))
        } catch {
            throw Failure(code: "connection-lost",
                          message: "ferryd closed the connection during \(method) (\(error.errno.symbolicName))",
                          hint: "it may have stopped or be restarting; ferryctl status says whether it answers")
        }
    }

    func emit(_ value: JSONValue, table: () -> String) {
        print(json ? value.encodedString() : table())
    }
}

extension JSONValue {
    /// Text for tables: strings bare, numbers without a fraction, null as "-".
    var plain: String {
        switch self {
        case .null: "-"
        case .bool(let value): value ? "yes" : "no"
        case .number(let value): value == value.rounded() ? String(Int64(value)) : String(value)
        case .string(let value): value
        default: encodedString()
        }
    }
}

/// Lays rows out in columns.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padded(widths[index] + 2)
        }.joined()
    }.joined(separator: "\n")
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show ferryd's state (host, live update readiness), or one unit's.",
        discussion: """
            With a unit: exit status 0 when it is active, 3 when it is inactive or failed, 4 when there \
            is no such unit (as systemctl status).
            """)
    @OptionGroup var options: ControlOptions
    @Argument(help: "A unit to show (NAME means NAME.service).") var unit: String?

    func run() throws {
        if let unit {
            let name = UnitNames.normalize(unit)
            let reply = try options.call("GetUnit", ["name": .string(name)], unit: name)
            let info = reply["unit"]?.object ?? [:]
            options.emit(.object(reply)) { UnitStatus.text(info) }
            if !UnitStatus.isActive(info) { throw ExitCode(ExitStatus.notActive) }
        } else {
            let reply = try options.call("GetManager")
            options.emit(.object(reply)) { ManagerStatus.text(reply) }
        }
    }
}

/// A unit's state the way systemctl status shows it.
enum UnitStatus {
    static func isActive(_ info: [String: JSONValue]) -> Bool {
        ["active", "reloading"].contains(info["active"]?.string ?? "")
    }

    static func text(_ info: [String: JSONValue]) -> String {
        let name = info["name"]?.plain ?? "?"
        let active = info["active"]?.string ?? "?"
        let mark = active == "failed" ? "×" : isActive(info) ? "●" : "○"
        let description = info["description"]?.string ?? ""
        var lines = ["\(mark) \(name)" + (description.isEmpty ? "" : " - \(description)")]
        func line(_ label: String, _ value: String) { lines.append(String(repeating: " ", count: max(0, 11 - label.count)) + "\(label): \(value)") }
        var loaded = info["load"]?.plain ?? "?"
        let enabled = info["enabled"]?.bool.map { $0 ? "enabled" : "disabled" }
        if let path = info["path"]?.string {
            loaded += " (\(path)\(enabled.map { "; \($0)" } ?? ""))"
        }
        line("Loaded", loaded)
        let sub = info["sub"]?.plain ?? "?"
        var state = sub == active ? active : "\(active) (\(sub))"
        if let result = info["result"]?.string, result != "success" { state += " (Result: \(result))" }
        line("Active", state)
        if let failure = info["failure"]?.string { line("Failure", failure) }
        if let pid = info["mainPID"], pid != .null { line("Main PID", pid.plain) }
        if let status = info["status"]?.string { line("Status", "\"\(status)\"") }
        if let code = info["errno"]?.number, code != 0 {
            let errno = Errno(rawValue: Int32(code))
            line("Error", "\(Int(code)) (\(errno.symbolicName): \(errno))")
        }
        if let restarts = info["restarts"]?.number, restarts > 0 { line("Restarts", info["restarts"]!.plain) }
        line("FD store", "\(info["fdStoreCount"]?.plain ?? "0") of \(info["fdStoreMax"]?.plain ?? "0") "
             + "(FileDescriptorStorePreserve=\(info["preserve"]?.plain ?? "?"))")
        return lines.joined(separator: "\n")
    }
}

/// ferryd's own state: where it runs, whether a live update can happen here, what it holds.
enum ManagerStatus {
    static func text(_ reply: [String: JSONValue]) -> String {
        var lines = ["ferryd \(reply["version"]?.plain ?? "?") (ferryctl \(FerryVersion.current))"]
        func line(_ label: String, _ value: String) { lines.append(String(repeating: " ", count: max(0, 12 - label.count)) + "\(label): \(value)") }
        line("Host", reply["host"]?.plain ?? "-")
        if let liveUpdate = reply["liveUpdate"]?.object {
            line("Live update", liveUpdate["summary"]?.plain ?? "-")
            line("Kexec", liveUpdate["kexec"]?.plain ?? "-")
        }
        if let phase = reply["liveUpdatePhase"]?.string { line("In progress", "live update, phase \(phase)") }
        line("Units", "\(reply["units"]?.plain ?? "0"), holding \(reply["storedFDs"]?.plain ?? "0") stored fd(s)")
        if let upstream = reply["upstreamStoredFDs"], upstream != .null {
            line("Upstream", "\(upstream.plain) fd(s) in the fd store of the manager above")
        }
        line("Kexecs", "\(reply["kexecCount"]?.plain ?? "0") (live updates this system came through)")
        line("Notify", "\(reply["notifyMessages"]?.plain ?? "0") message(s) handled")
        if let broker = reply["broker"]?.object {
            var text = "\(broker["held"]?.plain ?? "0") session(s) held for clients, \(broker["waiting"]?.plain ?? "0") incoming waiting"
            if let overdue = broker["overdue"]?.number, overdue > 0 {
                text += ", \(Int(overdue)) overdue (unclaimed after \(broker["unclaimedAfterSeconds"]?.plain ?? "?") s, \(broker["unclaimedAction"]?.plain ?? "?"))"
            }
            line("Broker", text + " (policy \(broker["policy"]?.plain ?? "?"))")
            for session in broker["sessions"]?.array ?? [] where session["overdue"]?.bool == true {
                line("Unclaimed", "'\(session["name"]?.plain ?? "?")' (kernel name \(session["kernelName"]?.plain ?? "?")) of uid \(session["uid"]?.plain ?? "?") \(session["owner"]?.plain ?? "?"): \(session["state"]?.plain ?? "?")")
            }
            for problem in broker["problems"]?.array ?? [] { line("Broker lost", problem.plain) }
        }
        if let previous = reply["previousShutdown"]?.object, !previous.isEmpty {
            line("Last update", previous.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.plain)" }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}

struct ListUnitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list-units", abstract: "List the units ferryd knows.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        let reply = try options.call("ListUnits")
        let units = reply["units"]?.array ?? []
        options.emit(.object(reply)) {
            table(["UNIT", "LOAD", "ACTIVE", "SUB", "FDSTORE", "DESCRIPTION"], units.map { unit in
                [unit["name"]?.plain ?? "", unit["load"]?.plain ?? "", unit["active"]?.plain ?? "", unit["sub"]?.plain ?? "",
                 "\(unit["fdStoreCount"]?.plain ?? "0")/\(unit["fdStoreMax"]?.plain ?? "0")", unit["description"]?.plain ?? ""]
            })
        }
    }
}

/// start, stop, restart, clean: one call on one unit, waiting for it to settle.
struct UnitActionCommand {
    static func run(_ method: String, _ unit: String, _ options: ControlOptions, _ extra: [String: JSONValue] = [:]) throws {
        let name = UnitNames.normalize(unit)
        let reply = try options.call(method, extra.merging(["name": .string(name)]) { $1 }, unit: name)
        let info = reply["unit"]?.object ?? [:]
        options.emit(.object(reply)) { outcome(info, name, method: method) }
    }

    /// `NAME: active (running)`; after a start, a unit that already ran to its end (a oneshot)
    /// says so instead of looking stopped.
    static func outcome(_ info: [String: JSONValue], _ name: String, method: String) -> String {
        let active = info["active"]?.string ?? "?"
        let sub = info["sub"]?.string ?? "?"
        var text = "\(info["name"]?.plain ?? name): \(active) (\(sub))"
        let started = method == "StartUnit" || method == "RestartUnit"
        if started && active == "active" && sub == "exited" {
            text += ": its command ran and exited successfully; the unit stays active (RemainAfterExit=yes)"
        } else if started && active == "inactive" && info["result"]?.string == "success" {
            text += ": its command ran and exited successfully"
            if sub == "dead-resources-pinned" { text += "; its fd store is kept" }
        }
        return text
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a unit and wait until it is up (or, for a oneshot, done).")
    @OptionGroup var options: ControlOptions
    @Flag(help: "Do not wait for the unit to be up.") var noBlock = false
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String
    func run() throws { try UnitActionCommand.run("StartUnit", unit, options, noBlock ? ["noBlock": .bool(true)] : [:]) }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a unit and wait until it is down.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String
    func run() throws { try UnitActionCommand.run("StopUnit", unit, options) }
}

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart",
                                                    abstract: "Restart a unit (its store is kept); returns when it is back, with its new state.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String
    func run() throws { try UnitActionCommand.run("RestartUnit", unit, options) }
}

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clean", abstract: "Empty the fd store of a stopped unit.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String
    func run() throws { try UnitActionCommand.run("CleanUnit", unit, options) }
}

struct FDStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fdstore", abstract: "List a unit's stored file descriptors.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String

    func run() throws {
        let name = UnitNames.normalize(unit)
        let reply = try options.call("ListFDStore", ["name": .string(name)], unit: name)
        let entries = reply["entries"]?.array ?? []
        options.emit(.object(reply)) {
            table(["FDNAME", "TYPE", "INODE", "SIZE", "SESSION", "PATH"], entries.map { entry in
                [entry["name"]?.plain ?? "", entry["type"]?.plain ?? "", entry["inode"]?.plain ?? "",
                 entry["size"]?.plain ?? "-", entry["sessionName"]?.plain ?? "-", entry["path"]?.plain ?? ""]
            })
        }
    }
}

struct DaemonReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "daemon-reload", abstract: "Re-read every unit file.")
    @OptionGroup var options: ControlOptions
    func run() throws {
        let reply = try options.call("Reload")
        options.emit(.object(reply)) { "ferryd re-read the unit files" }
    }
}

struct DaemonReexecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "daemon-reexec",
                                                    abstract: "Replace ferryd in place; services and stores stay.")
    @OptionGroup var options: ControlOptions
    func run() throws {
        _ = try options.call("Reexecute")
        // Wait for the new ferryd to answer, so scripts can go on at once.
        for _ in 0..<100 {
            if let reply = try? options.call("GetManager") {
                options.emit(.object(reply)) { "ferryd \(reply["version"]?.plain ?? "?") is running in its place" }
                return
            }
            usleep(50_000)
        }
        throw Failure(code: "reexec-failed", message: "ferryd did not come back after re-exec",
                      hint: "its log says why; if it is gone, start it again (services it ran are still running)")
    }
}

extension String {
    /// Pads with spaces to `width` characters (or leaves longer text as is).
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
