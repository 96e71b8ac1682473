import FerryJSON
import LiveUpdateReports
import Supervisor

/// What a re-executing ferryd hands to the new image (daemon-reexec): the sockets' and the lock's
/// descriptor numbers, every unit's snapshot, and this boot's restore report. It travels as JSON in
/// a memfd named by FERRYD_STATE_FD; `ferryd`'s `Reexec` writes and reads it.
public struct ReexecState: Codable {
    public var version: Int
    public var notifyFD: Int32
    public var controlFD: Int32
    public var kexecCount: UInt32
    public var units: [UnitSnapshot]
    /// The runtime directory's lock, held across the exec.
    public var lockFD: Int32?
    /// The version that wrote this state, for "re-executed A → B".
    public var ferrydVersion: String?
    /// This boot's restore report, so `last-update` survives an upgrade.
    public var lastRestore: RestoreReport?
    /// The broker's listening socket and its table (JSON text with the session fds it holds).
    public var brokerFD: Int32?
    public var broker: String?

    public init(version: Int, notifyFD: Int32, controlFD: Int32, kexecCount: UInt32, units: [UnitSnapshot],
                lockFD: Int32? = nil, ferrydVersion: String? = nil, lastRestore: RestoreReport? = nil) {
        self.version = version
        self.notifyFD = notifyFD
        self.controlFD = controlFD
        self.kexecCount = kexecCount
        self.units = units
        self.lockFD = lockFD
        self.ferrydVersion = ferrydVersion
        self.lastRestore = lastRestore
    }

    /// The state as written into the memfd, nil if it cannot be encoded.
    public func encoded() -> [UInt8]? {
        (try? JSONValue.encoding(self))?.compactBytes()
    }

    /// The state read back; nil for anything that is not a version 1 state.
    public static func decode(_ bytes: [UInt8]) -> ReexecState? {
        guard let state = JSONValue.parse(bytes)?.decode(ReexecState.self), state.version == 1 else {
            return nil
        }
        return state
    }
}
