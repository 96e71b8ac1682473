import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The LUO behaviour levels whose rules differ (kernel-luo.md §8).
public enum BehaviourLevel: String, CaseIterable, Comparable, Sendable, Codable {
    /// 6.19 and 7.0: no EBUSY for double preservation, no GET_NAME, seals not preserved,
    /// ~819 sessions and 128 files per session.
    case v6_19 = "6.19"
    /// 7.1: EBUSY for double preservation, seals preserved (memfd-v2); same limits as 6.19.
    case v7_1 = "7.1"
    /// 7.2: GET_NAME, strict names, direction check, limits lifted; FINISH ignores `reserved`.
    case v7_2 = "7.2"
    /// 7.3: as 7.2, and FINISH rejects a non-zero `reserved`.
    case v7_3 = "7.3"

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The level a kernel release number (`uname -r`, e.g. `7.2.13`) promises.
    public static func forRelease(_ release: String) -> BehaviourLevel? {
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        switch (parts[0], parts[1]) {
        case (6, 19...), (7, 0): return .v6_19
        case (7, 1): return .v7_1
        case (7, 2): return .v7_2
        case (7, 3...), (8..., _): return .v7_3
        default: return nil
        }
    }
}

/// Finds the behaviour level from the kernel's answers, as kernel-luo.md §8 describes.
public enum BehaviourProbe {
    /// What the probe saw, and the level it concludes.
    public struct Finding: Sendable, CustomStringConvertible {
        public var level: BehaviourLevel
        public var getNameAvailable: Bool
        public var emptyNameRefused: Bool
        public var doublePreserveRefused: Bool
        /// How 7.2 and 7.3 were told apart (they answer the same without a kexec).
        public var releaseHint: String?

        public var description: String {
            "level \(level.rawValue): GET_NAME \(getNameAvailable ? "yes" : "no"), empty name "
                + "\(emptyNameRefused ? "refused" : "accepted"), double preserve "
                + "\(doublePreserveRefused ? "refused" : "accepted")" + (releaseHint.map { ", \($0)" } ?? "")
        }
    }

    /// Probes with a short-lived session of a unique name that is closed (and so dropped) at the end.
    ///
    /// - Parameter release: the kernel release, to tell 7.2 from 7.3 (`uname -r` when nil). The
    ///   emulator's profile answers for itself, so pass its level's release there.
    public static func probe(_ device: borrowing LiveUpdateDevice, release: String? = nil) throws(LiveUpdateError)
        -> Finding
    {
        let name = "ferry-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let session = try device.createSession(named: name)
        var getName: RequestBuffer? = RequestBuffer(for: .getName)
        let getNameAvailable = session.rawIoctl(LiveUpdateRequest.getName.rawValue, &getName) == nil

        // Two tokens for one memfd: EBUSY from 7.1 on, accepted before.
        let memfd: OwnedFD
        do throws(SystemCallError) { memfd = try Memfd.create(name: "ferry-probe") } catch {
            throw LiveUpdateError(.system(error.errno), operation: error.call)
        }
        try session.preserve(memfd.borrowed, token: 1)
        var second: RequestBuffer? = RequestBuffer(for: .preserveFD)
        second!.fd = memfd.rawValue
        second!.token = 2
        let doubleResult = session.rawIoctl(LiveUpdateRequest.preserveFD.rawValue, &second)
        _ = consume session

        // An empty name: EINVAL from 7.2 (and stable backports). If a kernel accepts it, close it at once.
        var empty: RequestBuffer? = RequestBuffer(for: .createSession)
        let emptyResult = device.rawIoctl(LiveUpdateRequest.createSession.rawValue, &empty)
        if emptyResult == nil { _ = OwnedFD(adopting: empty!.fd) }

        var level: BehaviourLevel = getNameAvailable ? .v7_2 : (doubleResult == .resourceBusy ? .v7_1 : .v6_19)
        var hint: String?
        if level == .v7_2 {
            let running = release ?? currentRelease()
            if let promised = BehaviourLevel.forRelease(running), promised >= .v7_2 {
                level = promised
                hint = "release \(running)"
            }
        }
        return Finding(level: level, getNameAvailable: getNameAvailable, emptyNameRefused: emptyResult != nil,
                       doublePreserveRefused: doubleResult == .resourceBusy, releaseHint: hint)
    }

    /// `uname -r`.
    public static func currentRelease() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
