import FerryControl
import FerryJSON
import FerrySystem

/// `io.ferry.Broker`'s methods on the broker: parameters in, a reply and maybe an fd out.
enum BrokerCalls {
    /// A reply and the fd to attach to it (closed by the server after sending: the client has its own).
    struct Answer: ~Copyable {
        var reply: Varlink.Reply
        /// Zero or one fd, owned until the answer goes away.
        var descriptors = OwnedFDs()
        init(_ reply: Varlink.Reply, _ descriptor: consuming OwnedFD? = nil) {
            self.reply = reply
            if let fd = descriptor.take() { descriptors.append(fd) }
        }
    }

    /// The reply to `call`, and the fd to attach to it (the server closes its copy after sending).
    static func answer(_ call: Varlink.Call, attached: consuming OwnedFD?, broker: SessionBroker,
                       client: ClientIdentity) -> Answer {
        let method = call.method.hasPrefix(BrokerProtocol.interfaceName + ".")
            ? BrokerProtocol.Method(rawValue: String(call.method.dropFirst(BrokerProtocol.interfaceName.count + 1))) : nil
        guard let method else {
            return Answer(failure(.methodNotFound, "no method \(call.method.prefix(100)) in \(BrokerProtocol.interfaceName)"))
        }
        if method == .list {
            return Answer(Varlink.Reply(parameters: ["sessions": .array(broker.list(for: client)), "policy": .string(broker.policy.source)]))
        }
        guard let name = call.parameters["name"]?.string else {
            return Answer(failure(.invalidParameter, "\(method.rawValue) needs a string parameter 'name'"))
        }
        do throws(BrokerError) {
            switch method {
            case .acquire:
                let handed = try broker.acquire(name, for: client)
                let parameters: [String: JSONValue] = ["name": .string(name), "kernelName": .string(handed.kernelName),
                                                       "direction": .string("outgoing"), "created": .bool(handed.created)]
                return Answer(Varlink.Reply(parameters: parameters), handed.fd)
            case .retrieve:
                let handed = try broker.retrieve(name, for: client)
                let parameters: [String: JSONValue] = ["name": .string(name), "kernelName": .string(handed.kernelName),
                                                       "direction": .string("incoming")]
                return Answer(Varlink.Reply(parameters: parameters), handed.fd)
            case .preserve:
                // JSON numbers are doubles here: tokens stay below 2^53 to arrive exact.
                guard let token = call.parameters["token"]?.number, token >= 1, token < 9_007_199_254_740_992,
                    token == token.rounded()
                else {
                    return Answer(failure(.invalidParameter, "Preserve needs an integer parameter 'token' from 1 to 2^53-1"))
                }
                guard let fd = attached.take() else {
                    return Answer(failure(.invalidParameter, "Preserve needs the fd to preserve attached (SCM_RIGHTS)"))
                }
                let count = try broker.preserve(name, token: UInt64(token), fd: fd.borrowed, for: client)
                return Answer(Varlink.Reply(parameters: ["files": .number(Double(count.files)), "bytes": .number(Double(count.bytes))]))
            case .release:
                try broker.release(name, for: client)
                return Answer(Varlink.Reply())
            case .list:
                return Answer(Varlink.Reply())
            }
        } catch {
            return Answer(failure(error.name, error.message))
        }
    }

    static func failure(_ name: BrokerProtocol.ErrorName, _ message: String) -> Varlink.Reply {
        .failure(name.qualified, ["message": .string(message)])
    }
}
