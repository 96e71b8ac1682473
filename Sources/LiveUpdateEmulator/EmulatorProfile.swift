import LiveUpdate
import SystemPackage

/// The rules that differ between behaviour levels (kernel-luo.md §2–§5, §8).
public struct EmulatorProfile: Sendable, Hashable {
    public var level: BehaviourLevel

    public init(_ level: BehaviourLevel) { self.level = level }

    /// Session ioctls the kernel's table holds: PRESERVE_FD, RETRIEVE_FD, FINISH (+ GET_NAME in 7.2).
    public var sessionRequestCount: UInt32 { level >= .v7_2 ? 4 : 3 }
    /// Empty or unterminated names give EINVAL (7.2); before, empty was accepted and 64 bytes cut to 63.
    public var strictNames: Bool { level >= .v7_2 }
    /// EBUSY when a file is preserved twice (7.1).
    public var refusesDoublePreserve: Bool { level >= .v7_1 }
    /// memfd-v2: seals carried and re-applied (7.1); before, a restored memfd is left with F_SEAL_SEAL.
    public var preservesSeals: Bool { level >= .v7_1 }
    /// FINISH rejects a non-zero `reserved`: the spec dates it to 7.3, but a real 7.2.13 kernel
    /// already did (a stable backport), so the 7.2 profile follows the kernel.
    public var finishChecksReserved: Bool { level >= .v7_2 }
    /// Before 7.2 the /proc link text of a session could not exceed 63 bytes (names of 39+ bytes
    /// unreadable, per the spec); a real 7.2.13 kernel showed every length.
    public var shortSessionLinkText: Bool { level < .v7_2 }
    /// The fixed 16-page serialisation area held about 819 sessions before 7.2; 7.2 links blocks
    /// of 51 sessions, up to 10000 blocks.
    public var maximumSessions: Int { level >= .v7_2 ? 51 * 10_000 : 819 }
    public var sessionLimitErrno: Errno { level >= .v7_2 ? .noSpace : .noMemory }
    /// LUO_FILE_MAX before 7.2; blocks of 63 files, up to 10000 blocks, from 7.2.
    public var maximumFilesPerSession: Int { level >= .v7_2 ? 63 * 10_000 : 128 }
    /// Seal bits memfd-v2 knows: SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC.
    public static let preservableSeals: CInt = 0x3F
}
