import ArgumentParser
import FerryControl
import FerryJSON
import FerrySystem
import ServiceKit

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl session`: LUO sessions from ferryd's broker, for programs that cannot open
/// /dev/liveupdate themselves.
struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Brokered LUO sessions: run a command with one, list, release.",
        discussion: """
            The broker socket is --broker, $FERRY_BROKER_SOCKET, or /run/ferry/broker. ferryd identifies the \
            caller by its uid and its unit or cgroup (SO_PEERCRED), so the same service gets the same sessions \
            back after a kexec; the policy (/etc/ferry/broker.conf) decides who may have how many.
            """,
        subcommands: [SessionRunCommand.self, SessionListCommand.self, SessionReleaseCommand.self, SessionMemfdCommand.self]
    )
}

struct BrokerOptions: ParsableArguments {
    @Option(help: "ferryd's broker socket (default: $FERRY_BROKER_SOCKET or /run/ferry/broker).")
    var broker: String?

    var path: String { broker ?? BrokerProtocol.socketPath }
}

extension BrokeredSessions.Failure {
    /// In ferryctl's words, with an exit status: 4 for a refusal by policy or quota.
    var failure: Failure {
        let refused = [BrokerProtocol.ErrorName.permissionDenied, .quotaExceeded].map(\.qualified).contains(error ?? "")
        return Failure(code: refused ? "refused" : "broker", message: message, exitStatus: refused ? 4 : 1,
                       varlinkError: error)
    }
}

/// `ferryctl session run NAME -- COMMAND…`: the s6 way. The command gets the outgoing session at
/// fd 3 and, after a kexec, the incoming one at fd 4, named in LISTEN_FDS/LISTEN_FDNAMES and in
/// $FERRY_SESSION_FD / $FERRY_INCOMING_SESSION_FD, so a C or Python program needs no library.
struct SessionRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Execute COMMAND with the session NAME inherited (fd 3; the incoming one at fd 4).")

    @OptionGroup var options: BrokerOptions
    @Flag(help: "Do not take back the session of the previous kernel, only the outgoing one.")
    var noIncoming = false
    @Argument(help: "The session's name (1-63 printable bytes, no spaces, '/' or ':').") var name: String
    @Argument(parsing: .postTerminator, help: "The command and its arguments.") var command: [String]

    func run() throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --") }
        var descriptors: [CInt] = []
        var names: [String] = []
        var environment = ProcessImage.currentEnvironment().filter {
            !$0.hasPrefix("LISTEN_") && !$0.hasPrefix("FERRY_SESSION_") && !$0.hasPrefix("FERRY_INCOMING_SESSION_")
        }
        do throws(BrokeredSessions.Failure) {
            let outgoing = try BrokeredSessions.acquire(name, socketPath: options.path)
            descriptors.append(outgoing.releaseDescriptor().release())
            names.append(name)
            environment.append("\(BrokeredSessions.sessionFDVariable)=3")
            if !noIncoming, let incoming = try BrokeredSessions.retrieve(name, socketPath: options.path) {
                descriptors.append(incoming.releaseDescriptor().release())
                names.append("\(name)-incoming")
                environment.append("\(BrokeredSessions.incomingSessionFDVariable)=4")
            }
        } catch {
            for fd in descriptors { _ = close(fd) }
            throw error.failure
        }
        environment += ["\(BrokeredSessions.sessionNameVariable)=\(name)", "LISTEN_FDS=\(descriptors.count)",
                        "LISTEN_FDNAMES=\(names.joined(separator: ":"))", "LISTEN_PID=\(getpid())"]
        do throws(SystemCallError) {
            try ProcessImage.replace(arguments: command, environment: environment, descriptors: descriptors)
        } catch {
            throw Failure(code: "exec", message: "cannot run \(command[0]): \(error)", exitStatus: 127)
        }
    }
}

struct SessionListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The caller's brokered sessions (root: everyone's), with their state.")

    @OptionGroup var options: BrokerOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let sessions: [JSONValue]
        do throws(BrokeredSessions.Failure) {
            sessions = try BrokeredSessions.list(socketPath: options.path)
        } catch {
            throw error.failure
        }
        if json { return print(JSONValue.object(["sessions": .array(sessions)]).encodedString()) }
        print("NAME".padding(20) + "KERNEL NAME".padding(21) + "STATE".padding(10) + "FILES".padding(7) + "BYTES".padding(12) + "OWNER")
        for session in sessions {
            let overdue = session["overdue"]?.bool == true ? " (overdue)" : ""
            print((session["name"]?.string ?? "?").padding(20) + (session["kernelName"]?.string ?? "?").padding(21)
                  + (session["state"]?.string ?? "?").padding(10) + "\(Int(session["files"]?.number ?? 0))".padding(7)
                  + "\(Int64(session["bytes"]?.number ?? 0))".padding(12)
                  + "uid \(Int(session["uid"]?.number ?? -1)) \(session["owner"]?.string ?? "?")\(overdue)")
        }
    }
}

struct SessionReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Tell ferryd to stop carrying the caller's session NAME.")

    @OptionGroup var options: BrokerOptions
    @Argument var name: String

    func run() throws {
        do throws(BrokeredSessions.Failure) { try BrokeredSessions.release(name, socketPath: options.path) } catch {
            throw error.failure
        }
    }
}

private extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
