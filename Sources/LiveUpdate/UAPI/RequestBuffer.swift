import CFerry

/// The argument of one ioctl as raw bytes: what the kernel reads from and writes back to.
///
/// Every LUO struct starts with `u32 size`; the kernel reads `size` bytes, so a buffer must be at
/// least that long (tests that lie about `size` allocate room for the lie).
public struct RequestBuffer: Sendable, Equatable {
    public var bytes: [UInt8]

    public init(count: Int) { bytes = [UInt8](repeating: 0, count: count) }
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A zeroed buffer for `request` with `size` set to the struct size (plus `extra` zero bytes).
    public init(for request: LiveUpdateRequest, extra: Int = 0) {
        self.init(count: request.structSize + extra)
        size = UInt32(request.structSize + extra)
    }

    public var size: UInt32 {
        get { load(UInt32.self, at: 0) }
        set { store(newValue, at: 0) }
    }

    /// The `fd` field at offset 4, in every LUO struct that has one.
    public var fd: Int32 {
        get { load(Int32.self, at: 4) }
        set { store(newValue, at: 4) }
    }

    /// The `reserved` field of FINISH and GET_NAME (same offset as `fd`).
    public var reserved: UInt32 {
        get { load(UInt32.self, at: 4) }
        set { store(newValue, at: 4) }
    }

    /// The `token` field at offset 8 of PRESERVE_FD and RETRIEVE_FD.
    public var token: UInt64 {
        get { load(UInt64.self, at: 8) }
        set { store(newValue, at: 8) }
    }

    /// The 64-byte `name` at offset 8: written NUL-padded, read up to the first NUL.
    public var name: [UInt8] {
        get {
            let field = bytes[8..<min(bytes.count, 8 + LiveUpdateLimits.sessionNameCapacity)]
            return Array(field.prefix { $0 != 0 })
        }
        set {
            for index in 0..<LiveUpdateLimits.sessionNameCapacity where 8 + index < bytes.count {
                bytes[8 + index] = index < newValue.count ? newValue[index] : 0
            }
        }
    }

    /// The name field exactly as stored, all 64 bytes.
    public var rawNameField: [UInt8] { Array(bytes[8..<8 + LiveUpdateLimits.sessionNameCapacity]) }

    public func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        guard offset + MemoryLayout<T>.size <= bytes.count else { return 0 }
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    public mutating func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        guard offset + MemoryLayout<T>.size <= bytes.count else { return }
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }
}
