import FerryJSON
import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// `io.ferry.Broker`: LUO sessions for processes ferryd did not start, on their own socket.
///
/// The socket (`broker` beside `control` in ferryd's runtime directory, mode 0666) is `SOCK_SEQPACKET`: each packet
/// is one Varlink message (JSON and a NUL), so a reply and the fd it carries (SCM_RIGHTS on the
/// same packet) arrive together or not at all. One call, one reply, in order. The caller is
/// identified by the kernel (SO_PEERCRED at connect, its cgroup), never by its parameters.
///
/// Methods (parameters → reply; the fd rides the reply):
/// - `Acquire {name}` → `{name, kernelName, direction: "outgoing", created}` + the session fd.
///   Creates the caller's outgoing session NAME, or hands another fd to the one it has.
/// - `Retrieve {name}` → `{name, kernelName, direction: "incoming"}` + the session fd: the
///   session the same caller had before the kexec; handed over once, the caller then owns it
///   (RETRIEVE_FD, FINISH; closing it finishes it).
/// - `Preserve {name, token}` + an fd → `{files, bytes}`: PRESERVE_FD through ferryd, counted
///   against the caller's quota (files per session, bytes pinned).
/// - `Release {name}` → `{}`: ferryd lets go of the caller's session (not carried any more).
/// - `List {}` → `{sessions: [...], policy}`: the caller's sessions (root: everyone's).
public enum BrokerProtocol {
    public static let interfaceName = "io.ferry.Broker"
    /// Where clients find the socket: ferryd sets it for its own services; others use the default.
    public static let environmentVariable = "FERRY_BROKER_SOCKET"
    public static let defaultSocketPath = "/run/ferry/broker"

    /// `$FERRY_BROKER_SOCKET`, else the default path.
    public static var socketPath: String {
        getenv(environmentVariable).map { String(cString: $0) } ?? defaultSocketPath
    }

    public enum Method: String, Sendable, CaseIterable {
        case acquire = "Acquire", retrieve = "Retrieve", preserve = "Preserve", release = "Release", list = "List"
        public var qualified: String { "\(BrokerProtocol.interfaceName).\(rawValue)" }
    }

    /// Error names (qualified with the interface); every error has a `message` parameter.
    public enum ErrorName: String, Sendable {
        case invalidName = "InvalidName"
        case permissionDenied = "PermissionDenied"
        case quotaExceeded = "QuotaExceeded"
        case noSuchSession = "NoSuchSession"
        case nameCollision = "NameCollision"
        case unavailable = "SessionUnavailable"
        case invalidParameter = "InvalidParameter"
        case methodNotFound = "MethodNotFound"
        public var qualified: String { "\(BrokerProtocol.interfaceName).\(rawValue)" }
    }

    /// The largest packet either side sends.
    public static let maximumPacket = 256 << 10

    /// Encodes a message as a packet: its JSON and a NUL.
    public static func payload(_ bytes: [UInt8]) -> [UInt8] {
        var trimmed = bytes
        while trimmed.last == 0 { trimmed.removeLast() }
        return trimmed
    }
}

/// A blocking client of `io.ferry.Broker` (ferryctl, ServiceKit). Owns its connection.
public struct BrokerClient: ~Copyable {
    let socket: OwnedFD

    /// A reply with the fd it carried, if any (owned by this value until taken).
    public struct Answer: ~Copyable {
        public var reply: Varlink.Reply
        public var descriptor: OwnedFD?
    }

    /// Connects to `path` (`<runtime directory>/broker.sock`).
    public init(path: String) throws(SystemCallError) {
        socket = try UnixSocket.connect(path: path, kind: .sequentialPacket)
    }

    /// Sends `call`, with `descriptor` attached when given (the caller keeps it), and waits for the reply.
    public func call(_ call: Varlink.Call, descriptor: CInt? = nil) throws(SystemCallError) -> Answer {
        try UnixSocket.send(socket.borrowed, call.encoded(), descriptors: descriptor.map { [$0] } ?? [])
        var message = try UnixSocket.receive(socket.borrowed, maximumBytes: BrokerProtocol.maximumPacket, maximumDescriptors: 1)
        if message.isEndOfFile { throw SystemCallError("recvmsg (ferryd closed the broker connection)", .connectionReset) }
        guard let reply = Varlink.Reply.decode(BrokerProtocol.payload(message.bytes)) else {
            throw SystemCallError("broker reply", .ioError)
        }
        return Answer(reply: reply, descriptor: message.descriptors.isEmpty ? nil : message.descriptors.take(at: 0))
    }
}
