import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// LUO sessions from ferryd's broker, for a process that cannot open /dev/liveupdate (it runs
/// unprivileged, or under a manager ferryd does not control). ferryd creates the session, holds
/// it across the next kexec, and hands it back afterwards to the same uid and unit or cgroup.
///
/// Every session returned here is owned by the caller: closing an outgoing one leaves ferryd's
/// copy (it is still carried until `release`); closing an incoming one finishes it.
public enum BrokeredSessions {
    /// A refusal from the broker (its Varlink error and message), or a socket error.
    public struct Failure: Error, CustomStringConvertible {
        /// `io.ferry.Broker.QuotaExceeded` and the like; nil for a socket error.
        public var error: String?
        public var message: String
        public var description: String { error.map { "\($0): \(message)" } ?? message }
    }

    /// Environment `ferryctl session run` sets for the program it executes.
    public static let sessionFDVariable = "FERRY_SESSION_FD"
    public static let incomingSessionFDVariable = "FERRY_INCOMING_SESSION_FD"
    public static let sessionNameVariable = "FERRY_SESSION_NAME"

    /// The caller's outgoing session `name` (created now, or another fd to the one it has).
    public static func acquire(_ name: String, socketPath: String = BrokerProtocol.socketPath) throws(Failure) -> LiveUpdateSession {
        var answer = try call(.acquire, ["name": .string(name)], socketPath: socketPath)
        return try adopt(answer.descriptor.take(), name: name, direction: .outgoing)
    }

    /// The caller's session `name` from before the kexec, or nil if there is none waiting.
    public static func retrieve(_ name: String, socketPath: String = BrokerProtocol.socketPath) throws(Failure) -> LiveUpdateSession? {
        do throws(Failure) {
            var answer = try call(.retrieve, ["name": .string(name)], socketPath: socketPath)
            return try adopt(answer.descriptor.take(), name: name, direction: .incoming)
        } catch where error.error == BrokerProtocol.ErrorName.noSuchSession.qualified {
            return nil
        }
    }

    /// Preserves `fd` under `token` in the outgoing session `name` through ferryd, which counts it
    /// against the caller's quota (files per session, bytes pinned). The caller keeps `fd`.
    /// - Returns: the session's files and bytes preserved through the broker so far.
    @discardableResult
    public static func preserve(_ fd: FileDescriptor, token: UInt64, in name: String,
                                socketPath: String = BrokerProtocol.socketPath) throws(Failure) -> (files: Int, bytes: Int64) {
        let answer = try call(.preserve, ["name": .string(name), "token": .number(Double(token))], descriptor: fd.rawValue,
                              socketPath: socketPath)
        return (Int(answer.reply.parameters["files"]?.number ?? 0), Int64(answer.reply.parameters["bytes"]?.number ?? 0))
    }

    /// Tells ferryd to stop carrying the caller's session `name`.
    public static func release(_ name: String, socketPath: String = BrokerProtocol.socketPath) throws(Failure) {
        _ = try call(.release, ["name": .string(name)], socketPath: socketPath)
    }

    /// The sessions `ferryctl session run` handed this process (outgoing at $FERRY_SESSION_FD,
    /// incoming at $FERRY_INCOMING_SESSION_FD); each variable is cleared once read.
    public static func inherited(_ variable: String = sessionFDVariable) -> LiveUpdateSession? {
        guard let text = getenv(variable), let fd = CInt(String(cString: text)), fd >= 3 else { return nil }
        unsetenv(variable)
        try? FileDescriptor(rawValue: fd).setCloseOnExec()
        return try? LiveUpdateSession.adopt(OwnedFD(adopting: fd))
    }

    /// The caller's sessions as the broker lists them (root: everyone's).
    public static func list(socketPath: String = BrokerProtocol.socketPath) throws(Failure) -> [JSONValue] {
        try call(.list, [:], socketPath: socketPath).reply.parameters["sessions"]?.array ?? []
    }

    static func call(_ method: BrokerProtocol.Method, _ parameters: [String: JSONValue], descriptor: CInt? = nil,
                     socketPath: String) throws(Failure) -> BrokerClient.Answer {
        let answer: BrokerClient.Answer
        do throws(SystemCallError) {
            let client = try BrokerClient(path: socketPath)
            answer = try client.call(Varlink.Call(method: method.qualified, parameters: parameters), descriptor: descriptor)
        } catch {
            throw Failure(error: nil, message: "ferryd's broker at \(socketPath): \(error)")
        }
        if let error = answer.reply.error {
            throw Failure(error: error, message: answer.reply.parameters["message"]?.string ?? error)
        }
        return answer
    }

    static func adopt(_ fd: consuming OwnedFD?, name: String, direction: LiveUpdateSession.Direction) throws(Failure) -> LiveUpdateSession {
        guard let fd = fd.take() else { throw Failure(error: nil, message: "ferryd's broker answered without a session fd for '\(name)'") }
        do throws(LiveUpdateError) {
            let adopted = try LiveUpdateSession.adopt(fd)
            let backend = adopted.backend
            return LiveUpdateSession(adopting: adopted.releaseDescriptor(), name: name, direction: direction, backend: backend)
        } catch {
            throw Failure(error: nil, message: "the fd ferryd's broker handed for '\(name)' is not a LUO session: \(error)")
        }
    }
}
