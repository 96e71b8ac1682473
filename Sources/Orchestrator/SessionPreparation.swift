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
/// Owns the session and the mapping memfd: both close when it goes away, which before the
/// reboot is the rollback (the kernel drops an unfinished session on its last close).
struct PreparedSession: ~Copyable {
    let session: LiveUpdateSession
    private let mappingFD: OwnedFD
    private let capacity: Int
    private(set) var mapping = LiveUpdateMapping()

    struct Failure: Error { let text: String }

    /// Creates the session and preserves the mapping memfd first, sized for the worst case and
    /// written at the end (writes inside a preserved memfd's size stay allowed), so a session that
    /// fills up (128 files before 7.2) loses the last fds with a warning, never the mapping.
    init(backend: any LiveUpdateBackend, name: String, entryCount: Int) throws(Failure) {
        let session: LiveUpdateSession
        do throws(LiveUpdateError) {
            session = try LiveUpdateDevice.open(backend).createSession(named: name)
        } catch {
            throw Failure(text: "\(error)")
        }
        let capacity = 65536 + entryCount * 1024
        guard let memfd = try? Memfd.create(name: "ferry-mapping"),
            (try? FileIO.truncate(memfd.borrowed, to: Int64(capacity))) != nil
        else {
            throw Failure(text: "cannot create the mapping memfd of \(capacity) bytes")
        }
        do throws(LiveUpdateError) {
            try session.preserve(memfd.borrowed, token: LiveUpdateMapping.mappingToken)
        } catch {
            throw Failure(text: "the mapping could not be preserved at token 0: \(error)")
        }
        self.capacity = capacity
        self.mappingFD = memfd
        self.session = session
    }

    /// Preserves each plain fd at tokens 1, 2, … and records each session entry (carried by
    /// staying open in its store). A failed fd is skipped with a warning naming unit, fd name and
    /// errno; the update goes on without it.
    mutating func preserve(_ entries: [StoreCollection.Entry], report: inout LiveUpdateReport, logger: Logger) {
        var byUnit: [(unit: String, entries: [LiveUpdateMapping.Entry])] = []
        var token: UInt64 = 1
        for entry in entries {
            let mapped: LiveUpdateMapping.Entry
            if let sessionName = entry.sessionName {
                mapped = .session(name: entry.name, sessionName: sessionName)
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "luo_session", sessionName: sessionName))
            } else {
                do throws(LiveUpdateError) {
                    try session.preserve(FileDescriptor(rawValue: entry.fd), token: token)
                } catch {
                    let (type, reason) = LossReasons.preserveFailed(error.errno, fd: FileDescriptor(rawValue: entry.fd))
                    let text = "unit \(entry.unit) fd '\(entry.name)': \(reason) (\(error.operation): \(error.errno?.symbolicName ?? "\(error.kind)")); lost across the kexec"
                    logger.warning("\(text)")
                    report.skipped.append(text)
                    report.lost.append(Lost(unit: entry.unit.full, name: entry.name, type: type, reason: reason))
                    continue
                }
                mapped = .fd(name: entry.name, token: token)
                report.preserved.append(.init(unit: entry.unit.full, name: entry.name, type: "fd", token: token))
                token += 1
            }
            if let index = byUnit.firstIndex(where: { $0.unit == entry.unit.full }) {
                byUnit[index].entries.append(mapped)
            } else {
                byUnit.append((entry.unit.full, [mapped]))
            }
        }
        mapping.units = byUnit
    }

    /// Writes the mapping with `state` (kexec count, Ferry's own keys), as late as possible.
    /// Trailing spaces fill the rest of the memfd: JSON readers skip them. No write seal: a real
    /// kernel refuses F_SEAL_WRITE on a preserved memfd (EBUSY, its pages are pinned), and the
    /// preserved size is frozen anyway.
    mutating func writeMapping(kexecCount: UInt32, ferryState: [String: JSONValue]) throws(Failure) {
        mapping.kexecsCount = kexecCount
        var ferry = ferryState
        // The hand-over moment, taken last.
        ferry["shutdownFinish"] = .number(Double(MonotonicClock.microseconds()))
        mapping.state["ferry"] = .object(ferry)
        let document = mapping.encoded()
        guard document.count <= capacity else {
            throw Failure(text: "the mapping (\(document.count) bytes) outgrew its memfd (\(capacity) bytes)")
        }
        do {
            try FileIO.writeAll(mappingFD.borrowed, document + [UInt8](repeating: 0x20, count: capacity - document.count), at: 0)
        } catch {
            throw Failure(text: "the mapping could not be written: \(error)")
        }
    }
}
