import FerrySystem
import LiveUpdate

/// One session inside the emulated kernel.
final class EmulatedSession {
    enum Direction: String { case outgoing, incoming }

    /// A preserved file: for outgoing sessions the caller's file and its size at preserve time
    /// (the kernel freezes the size; the emulator can only check it at kexec); for incoming ones
    /// the copy made at kexec.
    struct Entry {
        var token: UInt64
        var file: HeldFile
        var frozenSize: Int64
    }

    let serial: UInt64
    let name: [UInt8]
    let direction: Direction
    /// In preserve order, which is the order the kernel serialises them.
    private(set) var entries: [Entry] = []
    private var positions: [UInt64: Int] = [:]
    /// Incoming: FINISH ran (explicitly or by close); no file can be retrieved any more.
    var finished = false
    /// Incoming: handed out by RETRIEVE_SESSION and its fd is still open.
    var handedOut = false

    init(serial: UInt64, name: [UInt8], direction: Direction) {
        self.serial = serial
        self.name = name
        self.direction = direction
    }

    var displayName: String { String(decoding: name, as: UTF8.self) }

    func entry(token: UInt64) -> Entry? { positions[token].map { entries[$0] } }

    func add(_ entry: Entry) {
        positions[entry.token] = entries.count
        entries.append(entry)
    }

    /// Drops every file (FINISH, close, or the end of an outgoing session); returns what was held.
    func removeAll() -> [Entry] {
        defer {
            entries = []
            positions = [:]
        }
        return entries
    }
}
