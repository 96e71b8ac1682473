import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// How to reach ferryd.
struct ControlOptions: ParsableArguments {
    @Option(help: "ferryd's control socket (default: $FERRY_CONTROL or /run/ferry/control).")
    var control: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    var path: String {
        if let control { return control }
        if let value = getenv("FERRY_CONTROL") { return String(cString: value) }
        return "/run/ferry/control"
    }

    /// Calls ferryd (a bare method name is io.ferry.Manager's); exits 3 with a clear message when
    /// it is not running, 1 on an error reply.
    func call(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> [String: JSONValue] {
        var client: VarlinkClient
        do throws(SystemCallError) {
            client = try VarlinkClient(path: path)
        } catch {
            printError("ferryctl: ferryd is not running (cannot connect to \(path): \(error.errno.symbolicName))")
            throw ExitCode(3)
        }
        let reply: Varlink.Reply
        do throws(SystemCallError) {
            reply = try client.call(Varlink.Call(method: method.contains(".") ? method : "io.ferry.Manager.\(method)",
                                                 parameters: parameters))
        } catch {
            printError("ferryctl: \(method): \(error)")
            throw ExitCode(3)
        }
        if let error = reply.error {
            let details = reply.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.plain)" }.joined(separator: " ")
            printError("ferryctl: \(method) failed: \(error.split(separator: ".").last ?? "") \(details)")
            throw ExitCode(error.hasSuffix("PermissionDenied") ? 4 : 1)
        }
        return reply.parameters
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
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show ferryd's state, or one unit's.")
    @OptionGroup var options: ControlOptions
    @Argument(help: "A unit to show.") var unit: String?

    func run() throws {
        if let unit {
            let reply = try options.call("GetUnit", ["name": .string(unit)])
            let info = reply["unit"]?.object ?? [:]
            options.emit(.object(reply)) {
                ["name", "description", "load", "active", "sub", "result", "mainPID", "status", "errno", "restarts",
                 "fdStoreCount", "fdStoreMax", "preserve", "path"].map { key in
                    "\(key.padded(14)) \(info[key]?.plain ?? "-")"
                }.joined(separator: "\n")
            }
        } else {
            let reply = try options.call("GetManager")
            options.emit(.object(reply)) {
                reply.sorted { $0.key < $1.key }.map { "\($0.key.padded(16)) \($0.value.plain)" }
                    .joined(separator: "\n")
            }
        }
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
        let reply = try options.call(method, extra.merging(["name": .string(unit)]) { $1 })
        let info = reply["unit"]?.object ?? [:]
        options.emit(.object(reply)) {
            "\(info["name"]?.plain ?? unit): \(info["active"]?.plain ?? "?") (\(info["sub"]?.plain ?? "?"))"
        }
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a unit and wait until it is up.")
    @OptionGroup var options: ControlOptions
    @Flag(help: "Do not wait for the unit to be up.") var noBlock = false
    @Argument var unit: String
    func run() throws { try UnitActionCommand.run("StartUnit", unit, options, noBlock ? ["noBlock": .bool(true)] : [:]) }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a unit and wait until it is down.")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String
    func run() throws { try UnitActionCommand.run("StopUnit", unit, options) }
}

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart a unit (its store is kept).")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String
    func run() throws { try UnitActionCommand.run("RestartUnit", unit, options) }
}

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clean", abstract: "Empty the fd store of a stopped unit.")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String
    func run() throws { try UnitActionCommand.run("CleanUnit", unit, options) }
}

struct FDStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fdstore", abstract: "List a unit's stored file descriptors.")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String

    func run() throws {
        let reply = try options.call("ListFDStore", ["name": .string(unit)])
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
    func run() throws { _ = try options.call("Reload") }
}

struct DaemonReexecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "daemon-reexec",
                                                    abstract: "Replace ferryd in place; services and stores stay.")
    @OptionGroup var options: ControlOptions
    func run() throws {
        _ = try options.call("Reexecute")
        // Wait for the new ferryd to answer, so scripts can go on at once.
        for _ in 0..<100 {
            if (try? VarlinkClient(path: options.path)) != nil, (try? options.call("GetManager")) != nil { return }
            usleep(50_000)
        }
        printError("ferryctl: ferryd did not come back after re-exec")
        throw ExitCode(1)
    }
}

extension String {
    /// Pads with spaces to `width` characters (or leaves longer text as is).
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
