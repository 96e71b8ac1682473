import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Varlink's wire format: JSON objects, each terminated by a NUL byte, over a unix stream socket.
public enum Varlink {
    public struct Call: Sendable, Equatable {
        public var method: String
        public var parameters: [String: JSONValue]
        public var oneway: Bool
        public var more: Bool

        public init(method: String, parameters: [String: JSONValue] = [:], oneway: Bool = false, more: Bool = false) {
            self.method = method
            self.parameters = parameters
            self.oneway = oneway
            self.more = more
        }

        public func encoded() -> [UInt8] {
            var object: [String: JSONValue] = ["method": .string(method)]
            if !parameters.isEmpty { object["parameters"] = .object(parameters) }
            if oneway { object["oneway"] = .bool(true) }
            if more { object["more"] = .bool(true) }
            return Array(JSONValue.object(object).encodedString().utf8) + [0]
        }

        /// Nil for anything that is not a call object with a string method.
        public static func decode(_ bytes: [UInt8]) -> Call? {
            guard let object = JSONValue.parse(bytes)?.object, let method = object["method"]?.string else { return nil }
            let parameters = object["parameters"]?.object ?? [:]
            if let given = object["parameters"], given != .null, given.object == nil { return nil }
            return Call(method: method, parameters: parameters, oneway: object["oneway"]?.bool ?? false,
                        more: object["more"]?.bool ?? false)
        }
    }

    public struct Reply: Sendable, Equatable {
        public var parameters: [String: JSONValue]
        /// The error's qualified name, e.g. `io.ferry.Manager.NoSuchUnit`.
        public var error: String?

        public init(parameters: [String: JSONValue] = [:], error: String? = nil) {
            self.parameters = parameters
            self.error = error
        }

        public static func failure(_ error: String, _ parameters: [String: JSONValue] = [:]) -> Reply {
            Reply(parameters: parameters, error: error)
        }

        public func encoded() -> [UInt8] {
            var object: [String: JSONValue] = ["parameters": .object(parameters)]
            if let error { object["error"] = .string(error) }
            return Array(JSONValue.object(object).encodedString().utf8) + [0]
        }

        public static func decode(_ bytes: [UInt8]) -> Reply? {
            guard let object = JSONValue.parse(bytes)?.object else { return nil }
            return Reply(parameters: object["parameters"]?.object ?? [:], error: object["error"]?.string)
        }
    }

    /// Splits a byte stream into NUL-terminated messages.
    public struct Framer: Sendable {
        private var buffer: [UInt8] = []
        /// The largest call a server accepts from anyone.
        public static let maximumMessage = 1 << 20
        /// The largest reply a client takes from ferryd (a list of every unit can be large).
        public static let maximumReply = 256 << 20
        private let maximum: Int

        public init(maximumMessage: Int = Framer.maximumMessage) { maximum = maximumMessage }

        /// Appends bytes; returns the complete messages, or nil when a message grows past the maximum.
        public mutating func feed(_ bytes: some Sequence<UInt8>) -> [[UInt8]]? {
            buffer.append(contentsOf: bytes)
            var messages: [[UInt8]] = []
            while let end = buffer.firstIndex(of: 0) {
                messages.append(Array(buffer[..<end]))
                buffer.removeSubrange(...end)
            }
            return buffer.count > maximum ? nil : messages
        }
    }
}

/// A blocking Varlink client, for ferryctl.
public struct VarlinkClient: ~Copyable {
    let socket: OwnedFD
    var framer = Varlink.Framer(maximumMessage: Varlink.Framer.maximumReply)
    var pending: [[UInt8]] = []

    public init(path: String) throws(SystemCallError) {
        socket = try UnixSocket.connect(path: path, kind: .stream)
    }

    /// Sends `call` and waits for its reply.
    public mutating func call(_ call: Varlink.Call) throws(SystemCallError) -> Varlink.Reply {
        try send(call)
        return try receiveReply()
    }

    /// Sends `call` without waiting; its reply comes from `receiveReply`, in call order.
    public func send(_ call: Varlink.Call) throws(SystemCallError) {
        let bytes = call.encoded()
        var sent = 0
        while sent < bytes.count {
            sent += try systemCall("send") {
                bytes.withUnsafeBytes { Glibc.send(socket.rawValue, $0.baseAddress! + sent, $0.count - sent, CInt(MSG_NOSIGNAL)) }
            }
        }
    }

    /// Waits for the reply to the oldest call not yet answered.
    public mutating func receiveReply() throws(SystemCallError) -> Varlink.Reply {
        while pending.isEmpty {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = try systemCall("recv") { Glibc.recv(socket.rawValue, &chunk, chunk.count, 0) }
            if count == 0 { throw SystemCallError("recv (ferryd closed the connection)", .connectionReset) }
            guard let messages = framer.feed(chunk[0..<count]) else { throw SystemCallError("recv", .messageTooLong) }
            pending += messages
        }
        guard let reply = Varlink.Reply.decode(pending.removeFirst()) else { throw SystemCallError("varlink reply", .ioError) }
        return reply
    }
}
