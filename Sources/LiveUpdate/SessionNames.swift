/// Kernel-visible names for sessions Ferry creates on someone else's behalf.
///
/// Session names are one global namespace of at most 63 bytes, too short to hold a unit or a
/// client's identity next to the name it asked for. So the kernel name is a 64-bit keyed hash
/// (SipHash-2-4) of the owner and the configured name, in lowercase hex:
///
/// - `LUOSession=NAME` of a unit: 16 hex digits of `hash("<cgroup path>/NAME")`, where the cgroup
///   path is the unit's (`/system.slice/foo.service` style; for ferryd's units ferryd passes the
///   path it gives the unit). The same shape systemd 262's work-in-progress uses, so a unit moves
///   between the two without its kernel name changing (as far as that shape is known).
/// - A brokered session: `fb-` and 16 hex digits of `hash("uid=<uid>\n<owner>\n<NAME>")`, where
///   the owner is what the broker identified (a unit, or a cgroup path); the prefix keeps the two
///   schemes from ever meeting.
///
/// Neither can be `ferry` or `ferry.N`. A 64-bit hash can collide; the broker keeps a table of
/// every name it made and refuses a second owner (and the kernel answers EEXIST besides), so a
/// collision is an error, never a shared session.
public enum SessionNames {
    /// The hash key (128 bits, little-endian halves), fixed so names survive upgrades and kexecs.
    static let key: (UInt64, UInt64) = keyHalves([0x7a, 0x3e, 0xf1, 0xc2, 0xb8, 0x4d, 0x9f, 0x0a,
                                                  0xe5, 0x6b, 0xd3, 0x17, 0xc4, 0x82, 0xa9, 0x5e])

    /// Prefix of every brokered session's kernel name.
    public static let brokeredPrefix = "fb-"

    /// The kernel name of `LUOSession=name` for the unit whose cgroup path is `cgroupPath`.
    public static func unitSession(cgroupPath: String, name: String) -> String {
        hex(SipHash24.hash(Array("\(cgroupPath)/\(name)".utf8), key: key))
    }

    /// The kernel name of the brokered session `name` of the client `owner` running as `uid`.
    public static func brokered(uid: UInt32, owner: String, name: String) -> String {
        brokeredPrefix + hex(SipHash24.hash(Array("uid=\(uid)\n\(owner)\n\(name)".utf8), key: key))
    }

    /// What a configured name may be: 1–63 bytes of printable ASCII without whitespace, `/` or `:`
    /// (it is also an fd name, and a word in unit files and on the command line).
    public static func isValidConfiguredName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        return bytes.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") }
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func keyHalves(_ bytes: [UInt8]) -> (UInt64, UInt64) {
        (SipHash24.littleEndianWord(bytes, at: 0), SipHash24.littleEndianWord(bytes, at: 8))
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash of a byte string.
public enum SipHash24 {
    public static func hash(_ message: [UInt8], key: (UInt64, UInt64)) -> UInt64 {
        var state = State(key: key)
        let whole = message.count / 8 * 8
        var offset = 0
        while offset < whole {
            state.absorb(littleEndianWord(message, at: offset))
            offset += 8
        }
        var last = UInt64(truncatingIfNeeded: message.count) << 56
        for (shift, byte) in message[whole...].enumerated() { last |= UInt64(byte) << (8 * UInt64(shift)) }
        state.absorb(last)
        return state.finish()
    }

    /// The little-endian word at `offset` (for building keys in tests).
    public static func littleEndianWordForTests(_ bytes: [UInt8], at offset: Int) -> UInt64 { littleEndianWord(bytes, at: offset) }

    static func littleEndianWord(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { word, index in word | UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
    }

    struct State {
        var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64

        init(key: (UInt64, UInt64)) {
            v0 = key.0 ^ 0x736f_6d65_7073_6575
            v1 = key.1 ^ 0x646f_7261_6e64_6f6d
            v2 = key.0 ^ 0x6c79_6765_6e65_7261
            v3 = key.1 ^ 0x7465_6462_7974_6573
        }

        mutating func absorb(_ word: UInt64) {
            v3 ^= word
            round()
            round()
            v0 ^= word
        }

        mutating func finish() -> UInt64 {
            v2 ^= 0xff
            for _ in 0..<4 { round() }
            return v0 ^ v1 ^ v2 ^ v3
        }

        mutating func round() {
            v0 &+= v1; v1 = rotate(v1, 13); v1 ^= v0; v0 = rotate(v0, 32)
            v2 &+= v3; v3 = rotate(v3, 16); v3 ^= v2
            v0 &+= v3; v3 = rotate(v3, 21); v3 ^= v0
            v2 &+= v1; v1 = rotate(v1, 17); v1 ^= v2; v2 = rotate(v2, 32)
        }

        func rotate(_ value: UInt64, _ bits: UInt64) -> UInt64 { value << bits | value >> (64 - bits) }
    }
}
