import FerryJSON
import FerrySystem
import SystemPackage

/// What ferryd and its keeper say to each other, on a SOCK_SEQPACKET socket: one JSON object per
/// packet, with the fds it names attached as SCM_RIGHTS (at most `batchLimit` to a packet).
///
/// ferryd → keeper: `hold` (items + fds), `state` (the update's state, replaced whole), `forget`
/// (drop a kind or a role of item), `take` (send me dups of one kind, or of everything), `sync`
/// (answer once everything before is done), `release` (close everything and exit).
/// keeper → ferryd: `ready` once it listens; for `take`, one `state`, `hold` packets and `end`;
/// for `sync`, `synced`; for `release`, `released`.
enum KeeperWire {
    /// One held fd, as both sides file it.
    struct Item: Sendable, Equatable {
        enum Kind: String, Sendable {
            /// An entry of a unit's fd store.
            case store
            /// A LUO session fd: Ferry's own (and its shards), or a unit's session retrieved for its store.
            case session
        }

        var kind: Kind
        /// store: the unit whose store holds it; session: the unit of a service-owned session.
        var unit: String?
        /// store: the fd name; session: the session's name.
        var name: String
        /// session: `outgoing` (made by this update), `incoming` (Ferry's, from the previous
        /// kernel) or `service` (a unit's, from the previous kernel).
        var role: String?
        /// session, role `service`: the fd name in its unit's store.
        var fdName: String?

        static func store(unit: String, name: String) -> Item { Item(kind: .store, unit: unit, name: name) }
        static func session(_ name: String, role: String, unit: String? = nil, fdName: String? = nil) -> Item {
            Item(kind: .session, unit: unit, name: name, role: role, fdName: fdName)
        }

        var json: JSONValue {
            var fields: [String: JSONValue] = ["kind": .string(kind.rawValue), "name": .string(name)]
            if let unit { fields["unit"] = .string(unit) }
            if let role { fields["role"] = .string(role) }
            if let fdName { fields["fdName"] = .string(fdName) }
            return .object(fields)
        }

        init(kind: Kind, unit: String? = nil, name: String, role: String? = nil, fdName: String? = nil) {
            self.kind = kind
            self.unit = unit
            self.name = name
            self.role = role
            self.fdName = fdName
        }

        init?(_ value: JSONValue) {
            guard let kind = value["kind"]?.string.flatMap(Kind.init(rawValue:)), let name = value["name"]?.string else { return nil }
            self.init(kind: kind, unit: value["unit"]?.string, name: name, role: value["role"]?.string,
                      fdName: value["fdName"]?.string)
        }
    }

    /// Below SCM_MAX_FD (253), the most fds one message can carry.
    static let batchLimit = 200
    /// Room for a batch of items with the longest unit and fd names.
    static let maximumPacket = 256 * 1024

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// One received packet: its fields, and the fds it carried (owned here until taken).
    struct Message: ~Copyable {
        var fields: [String: JSONValue]
        var descriptors: OwnedFDs
        var op: String { fields["op"]?.string ?? "" }
        var items: [Item?] { (fields["items"]?.array ?? []).map(Item.init) }
    }

    static func send(_ socket: FileDescriptor, _ fields: [String: JSONValue], descriptors: [CInt] = []) throws(SystemCallError) {
        try UnixSocket.send(socket, Array(JSONValue.object(fields).encodedString().utf8), descriptors: descriptors)
    }

    /// Sends `items` with their fds (`fds[i]` belongs to `items[i]`; the caller keeps its fds), in
    /// packets of at most `batchLimit`.
    static func sendItems(_ socket: FileDescriptor, _ items: [Item], fds: [CInt]) throws(SystemCallError) {
        precondition(items.count == fds.count, "one fd per item")
        for start in stride(from: 0, to: items.count, by: batchLimit) {
            let end = min(start + batchLimit, items.count)
            try send(socket, ["op": .string("hold"), "items": .array(items[start..<end].map(\.json))],
                     descriptors: Array(fds[start..<end]))
        }
    }

    /// The next packet; nil at end of file (the peer closed). A packet whose fds did not all
    /// arrive, or that is not a JSON object, is refused (its fds close with it).
    static func receive(_ socket: FileDescriptor) throws -> Message? {
        let received = try UnixSocket.receive(socket, maximumBytes: maximumPacket, maximumDescriptors: batchLimit + 8)
        if received.isEndOfFile { return nil }
        guard !received.controlTruncated, !received.payloadTruncated else {
            throw Malformed(description: "a packet was cut short (its fds or its text did not fit)")
        }
        guard let fields = JSONValue.parse(received.bytes)?.object else {
            throw Malformed(description: "a packet is not a JSON object")
        }
        return Message(fields: fields, descriptors: received.descriptors)
    }
}
