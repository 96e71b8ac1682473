import FDStore
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Logging
import SystemPackage

/// The preserve phase and the mapping: Ferry's LUO session holding every carried fd, and the
/// document at token 0 that says whose each one is.
///
/// Owns the session and, once written, the mapping memfd: both close when it goes away, which
/// before the reboot is the rollback (the kernel drops an unfinished session on its last close).
struct PreparedSession: ~Copyable {
    let session: LiveUpdateSession
    private var mappingFD: OwnedFD?
    /// Written by the preserve loops here and in PreparedSession+Groups.swift.
    var mapping = LiveUpdateMapping()
    private let backend: any LiveUpdateBackend
    private let name: String
    /// Told of each session as soon as it is created (the caller keeps nothing of the fd).
    private let keep: (FileDescriptor, String) -> Void
    /// Told of each session closed before the kexec (a group's shard dropped whole), so that no
    /// copy of it (the keeper's) keeps it open and carries part of the group.
    private let dropped: (String) -> Void
    /// Sessions beyond the first, `NAME.1`, `NAME.2`, …: a kernel before 7.2 takes 128 files per
    /// session (ENOSPC), and on 7.2+ RETRIEVE_FD costs grow with a session's size.
    private(set) var shards: [Shard] = []
    /// Shards ever opened: names are never reused, even after a group's shard was dropped (a
    /// name is free only once its close has reached the kernel, or the emulator).
    private var shardsOpened = 0
    /// X-FerryFDGroup= groups preserved whole, in order (each in a shard of its own).
    var groups: [GroupRecord] = []

    /// One more of Ferry's sessions; closing it (before the reboot) drops what it holds.
    final class Shard {
        let name: String
        let session: LiveUpdateSession
        var files = 0
        init(name: String, session: consuming LiveUpdateSession) {
            self.name = name
            self.session = session
        }
    }

    /// Files per session before a new shard is opened even where the kernel would take more.
    static let filesPerSession = 1000
    /// Files in the first session, the mapping's place included: every kernel takes 128 per
    /// session, so the mapping, preserved last at its real size, always finds its place there.
    static let filesInFirstSession = 128

    /// `NAME.N`: reserved for Ferry, like NAME itself.
    static func isShard(_ candidate: String, of name: String) -> Bool {
        candidate.hasPrefix(name + ".") && UInt(candidate.dropFirst(name.count + 1)) != nil
    }

    struct Failure: Error { let text: String }

    /// Creates the session. The mapping comes last (`writeMapping`), in a memfd of exactly its
    /// size, so the next boot reads no padding (a preserved memfd's size is frozen, and every
    /// page of it is pinned and carried).
    ///
    /// - Parameter keep: told of each session (this one, and each shard) as soon as it exists, to
    ///   hand a copy to the keeper; the fd is borrowed for the call.
    /// - Parameter dropped: told of each shard closed before the kexec (a group dropped whole).
    init(backend: any LiveUpdateBackend, name: String,
         keep: @escaping (FileDescriptor, String) -> Void = { _, _ in },
         dropped: @escaping (String) -> Void = { _ in }) throws(Failure) {
        let session: LiveUpdateSession
        do throws(LiveUpdateError) {
            session = try LiveUpdateDevice.open(backend).createSession(named: name)
        } catch {
            throw Failure(text: "\(error)")
        }
        keep(session.descriptor.borrowed, name)
        self.session = session
        self.mappingFD = nil
        self.backend = backend
        self.name = name
        self.keep = keep
        self.dropped = dropped
    }

    mutating func openShard() -> Shard? {
        let shardName = "\(name).\(shardsOpened + 1)"
        do throws(LiveUpdateError) {
            let shard = Shard(name: shardName, session: try LiveUpdateDevice.open(backend).createSession(named: shardName))
            shardsOpened += 1
            keep(shard.session.descriptor.borrowed, shardName)
            shards.append(shard)
            return shard
        } catch {
            return nil
        }
    }

    /// Closes the newest shard: the kernel unpreserves everything in it (there is no UNPRESERVE).
    mutating func dropLastShard() {
        guard let shard = shards.popLast() else { return }
        dropped(shard.name)
    }

    /// Preserves each plain fd at tokens 1, 2, … and records each session entry (carried by
    /// staying open in its store). A failed fd is skipped with a warning naming unit, fd name and
    /// errno; the update goes on without it.
    mutating func preserve(_ entries: [StoreCollection.Entry], report: inout LiveUpdateReport, logger: Logger) {
        var byUnit: [(unit: String, entries: [LiveUpdateMapping.Entry])] = []
        var unitIndex: [String: Int] = [:]
        var primaryFiles = 1  // the mapping's place, taken last
        var token: UInt64 = 1
        for entry in entries {
            let mapped: LiveUpdateMapping.Entry
            if let sessionName = entry.sessionName {
                mapped = .session(name: entry.name, sessionName: sessionName)
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "luo_session", sessionName: sessionName))
            } else {
                let fd = FileDescriptor(rawValue: entry.fd)
                var failure: LiveUpdateError?
                var placed: (token: UInt64, shard: String?)?
                for _ in 0..<2 {
                    let full = if let shard = shards.last { shard.files >= Self.filesPerSession } else {
                        primaryFiles >= Self.filesInFirstSession
                    }
                    if full { guard openShard() != nil else { break }; token = 1 }
                    do throws(LiveUpdateError) {
                        if let shard = shards.last {
                            try shard.session.preserve(fd, token: token)
                            shard.files += 1
                        } else {
                            try session.preserve(fd, token: token)
                            primaryFiles += 1
                        }
                        placed = (token, shards.last?.name)
                        token += 1
                        break
                    } catch {
                        failure = error
                        // This session is full: the next one takes the fd.
                        guard error.errno == .noSpace, (shards.last?.files ?? primaryFiles) > 0, openShard() != nil else { break }
                        token = 1
                    }
                }
                guard let placed else {
                    let (type, reason) = LossReasons.preserveFailed(failure?.errno, fd: fd)
                    let text = "unit \(entry.unit) fd '\(entry.name)': \(reason) (\(failure.map { "\($0.operation): \($0.errno?.symbolicName ?? "\($0.kind)")" } ?? "no session")); lost across the kexec"
                    logger.warning("\(text)")
                    report.skipped.append(text)
                    report.lost.append(Lost(unit: entry.unit.full, name: entry.name, type: type, reason: reason))
                    report.lose(.init(unit: entry.unit.full, name: entry.name, reason: .preserveFailed, detail: text))
                    continue
                }
                mapped = .fd(name: entry.name, token: placed.token, shard: placed.shard)
                TestFault.reached("preserve-\(report.preserved.count(where: { $0.type == "fd" }) + 1)")
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "fd", token: placed.token,
                                              sessionName: placed.shard))
            }
            // By index, not by search: thousands of units with thousands of fds.
            if let index = unitIndex[entry.unit.full] {
                byUnit[index].entries.append(mapped)
            } else {
                unitIndex[entry.unit.full] = byUnit.count
                byUnit.append((entry.unit.full, [mapped]))
            }
        }
        mapping.units = byUnit
    }

    /// Writes the mapping with `state` (kexec count, Ferry's own keys), as late as possible, into
    /// a memfd of exactly its size, and preserves it at token 0. No write seal: a real kernel
    /// refuses F_SEAL_WRITE on a preserved memfd (EBUSY, its pages are pinned), and the preserved
    /// size is frozen anyway.
    /// Returns the mapping's size in bytes.
    @discardableResult
    mutating func writeMapping(kexecCount: UInt32, ferryState: [String: JSONValue]) throws(Failure) -> Int {
        mapping.kexecsCount = kexecCount
        var ferry = ferryState
        if !shards.isEmpty { ferry["shards"] = .array(shards.map { .string($0.name) }) }
        if !groups.isEmpty { ferry["groups"] = .array(groups.map(\.json)) }
        // The hand-over moment, taken last.
        ferry["shutdownFinish"] = .number(Double(MonotonicClock.microseconds()))
        mapping.state["ferry"] = .object(ferry)
        let document = mapping.encoded()
        let memfd: OwnedFD
        do throws(SystemCallError) {
            memfd = try Memfd.create(name: "ferry-mapping", contents: document)
        } catch {
            throw Failure(text: "the mapping (\(document.count) bytes) could not be written: \(error)")
        }
        do throws(LiveUpdateError) {
            try session.preserve(memfd.borrowed, token: LiveUpdateMapping.mappingToken)
        } catch {
            throw Failure(text: "the mapping could not be preserved at token 0: \(error)")
        }
        mappingFD = consume memfd
        return document.count
    }
}
