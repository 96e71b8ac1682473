import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// ferryctl's exit statuses, as systemctl's (which follow the LSB's for init scripts).
enum ExitStatus {
    static let failure: Int32 = 1
    /// `status UNIT`: the unit is not active (inactive or failed).
    static let notActive: Int32 = 3
    /// Not allowed: a change by a non-root caller, or a control socket this user cannot open.
    /// For `status UNIT` it also means "no such unit" (its state is unknown), as in systemctl.
    static let notPermitted: Int32 = 4
    /// `status UNIT`: no such unit.
    static let statusUnknown: Int32 = 4
    /// Any other command on a unit that does not exist ("not installed").
    static let noSuchUnit: Int32 = 5
}

/// A failure ferryctl reports: what happened, what to do next, and the exit status. Printed as
/// `ferryctl: MESSAGE` and `  HINT` on stderr, or with `--json` as one JSON object on stdout.
struct Failure: Error {
    /// A stable identifier for scripts, e.g. `no-such-unit`, `ferryd-not-running`.
    var code: String
    var message: String
    var hint: String?
    var exitStatus: Int32 = ExitStatus.failure
    /// The Varlink error and its parameters, when ferryd answered with one.
    var varlinkError: String?
    var parameters: [String: JSONValue] = [:]

    var json: JSONValue {
        var error: [String: JSONValue] = [
            "code": .string(code), "message": .string(message), "exitStatus": .number(Double(exitStatus)),
        ]
        if let hint { error["hint"] = .string(hint) }
        if let varlinkError {
            error["varlinkError"] = .string(varlinkError)
            error["parameters"] = .object(parameters)
        }
        return .object(["error": .object(error)])
    }

    func report(json: Bool) {
        if json {
            print(self.json.encodedString())
        } else {
            printError("ferryctl: \(message)" + (hint.map { "\n  \($0)" } ?? ""))
        }
    }
}

/// Whether this run asked for JSON: errors then come as JSON too, also those found while parsing.
let jsonRequested = CommandLine.arguments.dropFirst().prefix { $0 != "--" }.contains("--json")

extension Failure {
    /// The control socket could not be reached.
    static func cannotConnect(_ path: String, _ errno: Errno) -> Failure {
        switch errno {
        case .noSuchFileOrDirectory, .connectionRefused, .notDirectory:
            return Failure(code: "ferryd-not-running",
                           message: "ferryd is not running (nothing answers at \(path): \(errno.symbolicName))",
                           hint: "start it (ferryd &, or as a service of your init system); if it uses another "
                               + "socket, name it with --control PATH or $FERRY_CONTROL")
        case .permissionDenied, .notPermitted:
            return Failure(code: "permission-denied",
                           message: "cannot open ferryd's control socket \(path): permission denied (\(errno.symbolicName))",
                           hint: "ferryd is probably running, but this user may not use its socket; run as root "
                               + "(sudo ferryctl …), or give this user access to \(path)",
                           exitStatus: ExitStatus.notPermitted)
        default:
            return Failure(code: "cannot-connect",
                           message: "cannot connect to ferryd at \(path): \(errno.symbolicName) (\(errno))")
        }
    }

    /// ferryd answered `call` with a Varlink error: the same in words, with what to do next.
    static func fromReply(_ reply: Varlink.Reply, method: String, unit: String?, command: String) -> Failure {
        let error = reply.error ?? ""
        let name = String(error.split(separator: ".").last ?? "")
        let parameters = reply.parameters
        let unitName = parameters["name"]?.string ?? unit ?? "the unit"
        var failure: Failure
        switch name {
        case "NoSuchUnit":
            failure = Failure(code: "no-such-unit", message: "unit \(unitName) not found",
                              hint: "ferryctl list-units shows the units ferryd knows; unit files go in /etc/ferry/system "
                                  + "or /run/ferry/system (or ferryd's --units folders), then ferryctl daemon-reload",
                              exitStatus: command == "status" ? ExitStatus.statusUnknown : ExitStatus.noSuchUnit)
        case "InvalidUnitName":
            failure = Failure(code: "invalid-unit-name", message: "'\(unitName)' is not a valid unit name",
                              hint: "unit names look like NAME.service or NAME@INSTANCE.service")
        case "UnitBusy":
            failure = Failure(code: "unit-busy",
                              message: "\(unitName) is busy (\(parameters["state"]?.string ?? "changing state"))",
                              hint: "wait until it has settled (ferryctl status \(unitName)), then try again")
        case "StartFailed":
            let reason = parameters["reason"]?.string ?? ""
            let detail = parameters["detail"]?.string.map { ": \($0)" } ?? ""
            failure = Failure(code: "start-failed",
                              message: "\(unitName) failed to start: \(Self.words(forResult: reason))\(detail)",
                              hint: "ferryctl status \(unitName) shows its state; ferryd's log has the details")
        case "PermissionDenied":
            failure = Failure(code: "permission-denied",
                              message: "\(command) needs root: ferryd refused \(parameters["method"]?.string ?? method) from uid \(getuid())",
                              hint: "run it as root (sudo ferryctl \(command) …); reading (status, list-units, show) is open to all",
                              exitStatus: ExitStatus.notPermitted)
        case "LiveUpdateInProgress":
            failure = Failure(code: "live-update-in-progress",
                              message: "a live update is under way (phase \(parameters["phase"]?.string ?? "?")); ferryd makes no other change until it ends",
                              hint: "try again once it has handed over or rolled back (ferryctl status shows the phase)")
        case "MethodNotFound", "InterfaceNotFound":
            failure = Failure(code: "unsupported",
                              message: "this ferryd does not offer \(method): it is older than ferryctl \(FerryVersion.current)",
                              hint: "run the ferryd that came with this ferryctl (ferryctl daemon-reexec loads the installed binary)")
        case "InvalidParameter":
            failure = Failure(code: "invalid-parameter",
                              message: "ferryd refused the parameter '\(parameters["parameter"]?.string ?? "?")' of \(method)")
        default:
            let details = parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.plain)" }.joined(separator: " ")
            failure = Failure(code: "error", message: "\(method) failed: \(error)\(details.isEmpty ? "" : " (\(details))")")
        }
        failure.varlinkError = error
        failure.parameters = parameters
        return failure
    }

    /// A unit's result (systemd's words: exec, resources, timeout, …) as a phrase.
    static func words(forResult result: String) -> String {
        switch result {
        case "exec": "its program could not be executed"
        case "resources": "ferryd could not set up its process"
        case "exit-code": "its process exited with an error status"
        case "signal": "its process was killed by a signal"
        case "core-dump": "its process dumped core"
        case "timeout": "it did not finish starting in time (TimeoutStartSec=)"
        case "start-limit-hit": "it was started too often in a short time (StartLimitBurst=, StartLimitIntervalSec=)"
        case "protocol": "it broke the notify protocol (it exited before READY=1)"
        case "dependency": "a unit it requires failed"
        case "": "no reason given"
        default: result
        }
    }
}

/// systemctl's rule for names: without a unit type suffix, `.service` is meant.
enum UnitNames {
    static let types = ["service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"]

    static func normalize(_ name: String) -> String {
        if let dot = name.lastIndex(of: "."), types.contains(String(name[name.index(after: dot)...])) { return name }
        return name + ".service"
    }
}
