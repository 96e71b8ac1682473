import ArgumentParser
import FerryJSON

/// `ferryctl enable UNIT`: link the unit into the targets its [Install] section names.
struct EnableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Start a unit at boot: link it into its WantedBy=/RequiredBy= targets.")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String
    func run() throws { try LinkCommand.run("EnableUnit", unit, options, verb: "Created") }
}

/// `ferryctl disable UNIT`: remove those links.
struct DisableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable", abstract: "Do not start a unit at boot.")
    @OptionGroup var options: ControlOptions
    @Argument var unit: String
    func run() throws { try LinkCommand.run("DisableUnit", unit, options, verb: "Removed") }
}

enum LinkCommand {
    static func run(_ method: String, _ unit: String, _ options: ControlOptions, verb: String) throws {
        let name = UnitNames.normalize(unit)
        let reply = try options.call(method, ["name": .string(name)], unit: name)
        let links = reply["links"]?.array?.compactMap(\.string) ?? []
        options.emit(.object(reply)) {
            links.isEmpty ? "\(reply["unit"]?.plain ?? unit): nothing to do" : links.map { "\(verb) \($0)." }.joined(separator: "\n")
        }
    }
}

/// `ferryctl logs UNIT`: what the unit last wrote to stdout and stderr.
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Show the last lines a unit wrote to stdout and stderr (ferryd keeps 500).")
    @OptionGroup var options: ControlOptions
    @Option(name: [.short, .customLong("lines")], help: "How many lines.") var lines = 50
    @Argument var unit: String
    func run() throws {
        let name = UnitNames.normalize(unit)
        let reply = try options.call("GetUnitLogs", ["name": .string(name), "lines": .number(Double(lines))], unit: name)
        options.emit(.object(reply)) { (reply["lines"]?.array ?? []).map(\.plain).joined(separator: "\n") }
    }
}
