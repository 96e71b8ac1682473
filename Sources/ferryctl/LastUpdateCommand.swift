import ArgumentParser
import FerryJSON
import FerrySystem
import LiveUpdateReports
import UpdateTimeline

/// `ferryctl last-update`: the newest live update in the history, as text, JSON (the history
/// record, schema in docs/observability.md) or a timeline picture.
struct LastUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "last-update",
        abstract: "Show the last live update: phases, each service's blackout, what came back and what was lost.",
        discussion: """
            --json prints the history record (null when this host never had a live update); --svg \
            draws it as a timeline (phases, and each service's bar from its stop to ready again).
            """)
    @OptionGroup var options: ControlOptions
    @Option(help: "Write the update as an SVG timeline to this file ('-' for standard output).") var svg: String?

    func run() throws {
        let reply = try options.call("io.ferry.Observe.GetLastUpdate")
        let value = reply["update"] ?? .null
        let record = value.decode(UpdateRecord.self)
        if let svg {
            guard let record else {
                printError("ferryctl: no live update to draw: this host's history is empty")
                throw ExitCode(1)
            }
            try write(TimelineSVG.render(record), to: svg)
            if svg != "-" && !options.json { print("timeline of live update \(record.id) written to \(svg)") }
            return
        }
        if options.json { return print(value.encodedString()) }
        guard let record else {
            let kexecs = (try? options.call("GetManager"))?["kexecCount"]?.plain ?? "0"
            return print("no live update in this host's history (kexec count \(kexecs))")
        }
        print(UpdateText.details(record))
    }

    private func write(_ text: String, to path: String) throws {
        if path == "-" { return print(text, terminator: "") }
        do throws(SystemCallError) {
            try AtomicFile.write(Array(text.utf8), to: path)
        } catch {
            printError("ferryctl: cannot write \(path): \(error)")
            throw ExitCode(1)
        }
    }
}

/// `ferryctl history`: every live update kept, newest last.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List the live updates this host went through (kept across kexecs and restarts).")
    @OptionGroup var options: ControlOptions
    @Option(help: "Show only the newest N.") var limit: Int?

    func run() throws {
        var parameters: [String: JSONValue] = [:]
        if let limit { parameters["limit"] = .number(Double(limit)) }
        let reply = try options.call("io.ferry.Observe.GetHistory", parameters)
        let records = (reply["updates"]?.array ?? []).compactMap { $0.decode(UpdateRecord.self) }
        options.emit(.object(reply)) {
            records.isEmpty ? "no live update in this host's history" : UpdateText.table(records)
        }
    }
}

/// `ferryctl metrics`: the Prometheus text ferryd writes for node_exporter's textfile collector.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print ferryd's metrics in the Prometheus text format.")
    @OptionGroup var options: ControlOptions

    func run() throws {
        let reply = try options.call("io.ferry.Observe.GetMetrics")
        if options.json { return print(JSONValue.object(reply).encodedString()) }
        print(reply["text"]?.string ?? "", terminator: "")
    }
}
