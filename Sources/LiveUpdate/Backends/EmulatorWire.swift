import FerrySystem
import SystemPackage

/// The emulator's wire format: one SOCK_SEQPACKET packet per request and per reply, little-endian.
///
/// Requests to the emulator's control socket (open, simulated kexec, status) are answered on the
/// same connection. An ioctl request travels on the emulated device or session fd itself and
/// carries, as its first SCM_RIGHTS descriptor, a socket on which the emulator answers; so a
/// session fd shared by several processes never mixes up their replies.
public enum EmulatorWire {
    public static let magic: UInt32 = 0x4655_4C31  // "FUL1"
    public static let maximumPacket = 1 << 20
    /// The abstract-address prefix of every socket end the emulator keeps for a handed-out fd.
    public static let addressPrefix = Array("\0ferry-luo:".utf8)
    /// The environment variable naming the emulator's control socket.
    public static let environmentVariable = "FERRY_LIVEUPDATE_EMULATOR"

    public enum Kind: UInt32, Sendable {
        case ioctl = 1
        case openDevice = 2
        case simulateKexec = 3
        case status = 4
    }

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The argument pointer was NULL.
        public static let nullArgument = Flags(rawValue: 1)
        /// A descriptor to preserve follows the reply socket.
        public static let payloadAttached = Flags(rawValue: 2)
        /// The `fd` to preserve is not open in the caller (EBADF in the kernel's order).
        public static let payloadInvalid = Flags(rawValue: 4)
        /// The caller's descriptor table is full (EMFILE in the kernel's order).
        public static let callerTableFull = Flags(rawValue: 8)
    }

    public struct Request: Sendable, Equatable {
        public var kind: Kind
        public var request: UInt32
        public var flags: Flags
        public var argument: [UInt8]
        /// For simulated kexec: options as text (e.g. `incompatible`), empty otherwise.
        public var text: String

        public init(kind: Kind, request: UInt32 = 0, flags: Flags = [], argument: [UInt8] = [], text: String = "") {
            self.kind = kind
            self.request = request
            self.flags = flags
            self.argument = argument
            self.text = text
        }

        public static func == (a: Request, b: Request) -> Bool {
            a.kind == b.kind && a.request == b.request && a.flags.rawValue == b.flags.rawValue
                && a.argument == b.argument && a.text == b.text
        }

        public func encoded() -> [UInt8] {
            var out = Writer()
            out.u32(EmulatorWire.magic)
            out.u32(kind.rawValue)
            out.u32(request)
            out.u32(flags.rawValue)
            out.blob(argument)
            out.blob(Array(text.utf8))
            return out.bytes
        }

        /// Parses a request; nil for anything malformed (the emulator then drops the packet).
        public static func decode(_ bytes: [UInt8]) -> Request? {
            var input = Reader(bytes)
            guard input.u32() == EmulatorWire.magic, let rawKind = input.u32(), let kind = Kind(rawValue: rawKind),
                let request = input.u32(), let flags = input.u32(), let argument = input.blob(),
                let text = input.blob(), input.atEnd
            else { return nil }
            return Request(kind: kind, request: request, flags: Flags(rawValue: flags), argument: argument,
                           text: String(decoding: text, as: UTF8.self))
        }
    }

    public struct Reply: Sendable, Equatable {
        /// 0 for success, else the errno.
        public var errno: Int32
        /// The bytes copied back into the caller's argument (min(size, struct size)).
        public var output: [UInt8]
        /// JSON for status and simulated kexec.
        public var text: String

        public init(errno: Int32 = 0, output: [UInt8] = [], text: String = "") {
            self.errno = errno
            self.output = output
            self.text = text
        }

        public func encoded() -> [UInt8] {
            var out = Writer()
            out.u32(EmulatorWire.magic)
            out.u32(UInt32(bitPattern: errno))
            out.blob(output)
            out.blob(Array(text.utf8))
            return out.bytes
        }

        public static func decode(_ bytes: [UInt8]) -> Reply? {
            var input = Reader(bytes)
            guard input.u32() == EmulatorWire.magic, let code = input.u32(), let output = input.blob(),
                let text = input.blob(), input.atEnd
            else { return nil }
            return Reply(errno: Int32(bitPattern: code), output: output, text: String(decoding: text, as: UTF8.self))
        }
    }

    struct Writer {
        var bytes: [UInt8] = []
        mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func blob(_ data: [UInt8]) {
            u32(UInt32(data.count))
            bytes.append(contentsOf: data)
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var position = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { position == bytes.count }
        mutating func u32() -> UInt32? {
            guard position + 4 <= bytes.count else { return nil }
            defer { position += 4 }
            return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt32.self)) }
        }
        mutating func blob() -> [UInt8]? {
            guard let count = u32(), Int(count) <= bytes.count - position else { return nil }
            defer { position += Int(count) }
            return Array(bytes[position..<position + Int(count)])
        }
    }
}
