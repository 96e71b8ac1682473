import ControlServer
import FerryControl
import FerryJSON
import LiveUpdateReports

/// ferryd's Varlink interface `io.ferry.Observe`: the update history and the metrics. Read-only,
/// open to every caller.
public final class ObserveInterface {
    public static let interfaceName = "io.ferry.Observe"
    public static let description = """
        interface io.ferry.Observe

        # The live update history, oldest first (schema in docs/observability.md); at most `limit` records.
        method GetHistory(limit: ?int) -> (schema: int, updates: []object, totals: object)
        # The newest record, null when this host never had a live update.
        method GetLastUpdate() -> (update: ?object)
        # The metrics in the Prometheus text format, as written to the textfile collector's file.
        method GetMetrics() -> (text: string, path: ?string)
        """

    let observer: UpdateObserver

    public init(observer: UpdateObserver) { self.observer = observer }

    /// Whether `call` is for this interface.
    public static func handles(_ call: Varlink.Call) -> Bool { call.method.hasPrefix(interfaceName + ".") }

    public func handle(_ call: Varlink.Call, responder: VarlinkServer.Responder) {
        responder.reply(reply(call))
    }

    func reply(_ call: Varlink.Call) -> Varlink.Reply {
        let history = observer.history
        switch call.method.dropFirst(Self.interfaceName.count + 1) {
        case "GetHistory":
            var updates = history.updates
            if let limit = call.parameters["limit"]?.number, limit >= 0 { updates = Array(updates.suffix(Int(limit))) }
            return Varlink.Reply(parameters: [
                "schema": .number(Double(UpdateRecord.schemaVersion)),
                "updates": .array(updates.map { JSONValue.from($0) }),
                "totals": JSONValue.from(history.totals),
            ])
        case "GetLastUpdate":
            return Varlink.Reply(parameters: ["update": history.last.map { JSONValue.from($0) } ?? .null])
        case "GetMetrics":
            return Varlink.Reply(parameters: [
                "text": .string(observer.renderMetrics()),
                "path": observer.metricsFile.map { .string($0) } ?? .null,
            ])
        default:
            return .failure("org.varlink.service.MethodNotFound", ["method": .string(call.method)])
        }
    }
}
