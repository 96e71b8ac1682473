import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The emulated LUO core: the device, the outgoing and incoming session lists and their files,
/// and the rules of kernel-luo.md §2–§5 and §10 for one behaviour level.
///
/// It knows nothing of sockets: the server turns packets into calls here and hands out what the
/// outcome names. Confined to the server's thread.
public final class EmulatedKernel {
    /// What an ioctl produced: an errno, or the bytes copied back and what to install in the caller.
    struct Outcome {
        enum HandOut {
            case session(EmulatedSession)
            case file(HeldFile)
        }
        var errno: Errno?
        var output: [UInt8] = []
        var handOut: HandOut?

        static func failure(_ errno: Errno) -> Outcome { Outcome(errno: errno) }
    }

    public let profile: EmulatorProfile
    private(set) var deviceInUse = false
    /// Set by a simulated kexec with incompatible data: every open then fails with EIO.
    private var deserializationFailed = false
    private(set) var outgoing: [UInt64: EmulatedSession] = [:]
    private(set) var incoming: [UInt64: EmulatedSession] = [:]
    private var nextSerial: UInt64 = 1
    /// How many sessions preserve each file (by inode): the kernel's "already managed" set.
    private var preservedFiles: [FileKey: Int] = [:]
    public private(set) var liveUpdateNumber = 0
    /// The most recent ioctls, session closes and simulated kexecs, oldest first: how tests see
    /// the order of calls. Only ever written: no rule reads it (EmulatorCallLog.swift).
    var callLog = EmulatorCallLog()

    public init(profile: EmulatorProfile) { self.profile = profile }

    // MARK: - The device

    func openDevice() -> Errno? {
        if deserializationFailed { return .ioError }
        if deviceInUse { return .resourceBusy }
        deviceInUse = true
        return nil
    }

    func deviceClosed() { deviceInUse = false }

    func deviceIoctl(request: UInt32, argument: [UInt8]?, flags: EmulatorWire.Flags) -> Outcome {
        let number = request & 0xFF
        let table: [LiveUpdateRequest] = [.createSession, .retrieveSession]
        guard number < UInt32(table.count) else { return .failure(.invalidArgument) }
        let decoded = decode(request: request, expected: table[Int(number)], argument: argument, checkDirection: nil)
        guard case .success(var buffer) = decoded.result else {
            if case .failure(let code) = decoded.result { return .failure(code) }
            return .failure(.invalidArgument)
        }
        var outcome = table[Int(number)] == .createSession
            ? createSession(&buffer, flags: flags) : retrieveSession(&buffer, flags: flags)
        if outcome.errno == nil { outcome.output = Array(buffer.bytes.prefix(decoded.copyBack)) }
        let field = buffer.rawNameField
        callLog.record(table[Int(number)], session: String(decoding: field[..<(field.firstIndex(of: 0) ?? field.count)], as: UTF8.self),
                       errno: outcome.errno)
        return outcome
    }

    private func createSession(_ buffer: inout RequestBuffer, flags: EmulatorWire.Flags) -> Outcome {
        if flags.contains(.callerTableFull) { return .failure(.tooManyOpenFiles) }
        guard let name = validName(buffer.rawNameField) else { return .failure(.invalidArgument) }
        if outgoing.values.contains(where: { $0.name == name }) { return .failure(.fileExists) }
        if outgoing.count >= profile.maximumSessions { return .failure(profile.sessionLimitErrno) }
        let session = EmulatedSession(serial: takeSerial(), name: name, direction: .outgoing)
        outgoing[session.serial] = session
        return Outcome(handOut: .session(session))
    }

    private func retrieveSession(_ buffer: inout RequestBuffer, flags: EmulatorWire.Flags) -> Outcome {
        if flags.contains(.callerTableFull) { return .failure(.tooManyOpenFiles) }
        // No name validation here (a real 7.2.13 kernel answers ENOENT for empty and unterminated
        // names): the field is compared as is, and 64 bytes without NUL match no session.
        let field = buffer.rawNameField
        let name = Array(field[..<(field.firstIndex(of: 0) ?? field.count)])
        guard let session = incoming.values.first(where: { $0.name == name }) else {
            return .failure(.noSuchFileOrDirectory)
        }
        if session.handedOut { return .failure(.invalidArgument) }
        session.handedOut = true
        return Outcome(handOut: .session(session))
    }

    /// 7.2: 1 to 63 bytes and a NUL inside the field. Before: whatever precedes the first NUL, cut
    /// to 63 bytes (strscpy), the empty name included.
    private func validName(_ field: [UInt8]) -> [UInt8]? {
        let terminated = field.firstIndex(of: 0)
        if profile.strictNames {
            guard let end = terminated, end > 0 else { return nil }
            return Array(field[..<end])
        }
        return Array(field[..<(terminated ?? LiveUpdateLimits.maximumSessionNameLength)])
    }

    // MARK: - Sessions

    func sessionIoctl(_ session: EmulatedSession, request: UInt32, argument: [UInt8]?, payload: consuming OwnedFD?,
                      flags: EmulatorWire.Flags) -> Outcome {
        let number = request & 0xFF
        guard number >= 0x40, number < 0x40 + profile.sessionRequestCount else { return .failure(.invalidArgument) }
        let table: [LiveUpdateRequest] = [.preserveFD, .retrieveFD, .finish, .getName]
        let kind = table[Int(number - 0x40)]
        let decoded = decode(request: request, expected: kind, argument: argument, checkDirection: session)
        guard case .success(var buffer) = decoded.result else {
            if case .failure(let code) = decoded.result { return .failure(code) }
            return .failure(.invalidArgument)
        }
        var outcome: Outcome
        switch kind {
        case .preserveFD: outcome = preserve(session, &buffer, payload: payload, flags: flags)
        case .retrieveFD: outcome = retrieveFile(session, &buffer, flags: flags)
        case .finish: outcome = finish(session, &buffer)
        default: outcome = getName(session, &buffer)
        }
        if outcome.errno == nil { outcome.output = Array(buffer.bytes.prefix(decoded.copyBack)) }
        let carriesToken = kind == .preserveFD || kind == .retrieveFD
        callLog.record(kind, session: session.displayName, token: carriesToken ? buffer.token : nil,
                       size: carriesToken && outcome.errno == nil ? session.entry(token: buffer.token)?.frozenSize : nil,
                       errno: outcome.errno)
        return outcome
    }

    private func preserve(_ session: EmulatedSession, _ buffer: inout RequestBuffer, payload: consuming OwnedFD?,
                          flags: EmulatorWire.Flags) -> Outcome {
        let token = buffer.token
        if session.entry(token: token) != nil { return .failure(.fileExists) }
        if session.entries.count >= profile.maximumFilesPerSession { return .failure(.noSpace) }
        guard let fd = payload.take(), !flags.contains(.payloadInvalid) else { return .failure(.badFileDescriptor) }
        guard Self.isPreservableMemfd(fd.borrowed) else { return .failure(.noSuchFileOrDirectory) }
        let file: HeldFile
        do throws(SystemCallError) { file = try HeldFile(adopting: fd) } catch { return .failure(.noMemory) }
        if profile.refusesDoublePreserve && (preservedFiles[file.key] ?? 0) > 0 { return .failure(.resourceBusy) }
        if profile.refusesDoublePreserve && retrievedUnfinished(file.key) { return .failure(.resourceBusy) }
        if profile.preservesSeals {
            let seals = (try? Memfd.seals(of: file.descriptor).rawValue) ?? 0
            if seals & ~EmulatorProfile.preservableSeals != 0 { return .failure(.notSupported) }
        }
        let size = (try? FileIO.size(of: file.descriptor)) ?? 0
        session.add(.init(token: token, file: file, frozenSize: size))
        preservedFiles[file.key, default: 0] += 1
        return Outcome()
    }

    /// memfd_luo's rule: a shmem file with no links. Hugetlb memfds live on hugetlbfs and fail it.
    static func isPreservableMemfd(_ fd: FileDescriptor) -> Bool {
        guard let status = try? FileIdentity.stat(fd), let magic = try? FileIdentity.fileSystemMagic(fd) else {
            return false
        }
        return magic == ferry_TMPFS_MAGIC && status.st_mode & S_IFMT == S_IFREG && status.st_nlink == 0
    }

    private func retrievedUnfinished(_ key: FileKey) -> Bool {
        incoming.values.contains { session in !session.finished && session.entries.contains { $0.file.key == key } }
    }

    private func retrieveFile(_ session: EmulatedSession, _ buffer: inout RequestBuffer, flags: EmulatorWire.Flags)
        -> Outcome
    {
        if flags.contains(.callerTableFull) { return .failure(.tooManyOpenFiles) }
        guard !session.finished, let entry = session.entry(token: buffer.token) else {
            return .failure(.noSuchFileOrDirectory)
        }
        return Outcome(handOut: .file(entry.file))
    }

    private func finish(_ session: EmulatedSession, _ buffer: inout RequestBuffer) -> Outcome {
        if profile.finishChecksReserved && buffer.reserved != 0 { return .failure(.invalidArgument) }
        finishIncoming(session)
        return Outcome()
    }

    private func getName(_ session: EmulatedSession, _ buffer: inout RequestBuffer) -> Outcome {
        if buffer.reserved != 0 { return .failure(.invalidArgument) }
        buffer.name = session.name
        return Outcome()
    }

    /// Unretrieved files are discarded; retrieved ones live on in their holders' fds.
    private func finishIncoming(_ session: EmulatedSession) {
        session.finished = true
        _ = session.removeAll()
    }

    /// The last reference to a session fd went away.
    func sessionClosed(_ session: EmulatedSession) {
        callLog.record(closed: session.displayName, direction: session.direction.rawValue)
        switch session.direction {
        case .outgoing:
            for entry in session.removeAll() { release(entry.file.key) }
            outgoing[session.serial] = nil
        case .incoming:
            finishIncoming(session)
            incoming[session.serial] = nil
        }
    }

    private func release(_ key: FileKey) {
        let remaining = (preservedFiles[key] ?? 1) - 1
        preservedFiles[key] = remaining > 0 ? remaining : nil
    }

    // MARK: - Dispatch (kernel-luo.md §2.1, §2.2)

    struct Decoded {
        var result: Result<RequestBuffer, Errno>
        var copyBack = 0
    }

    /// size read → exact command → direction → size ≥ struct → zero tail → a struct-sized copy.
    private func decode(request: UInt32, expected: LiveUpdateRequest, argument: [UInt8]?,
                        checkDirection session: EmulatedSession?) -> Decoded {
        guard let argument, argument.count >= 4 else { return Decoded(result: .failure(.badAddress)) }
        guard UInt(request) == expected.rawValue else { return Decoded(result: .failure(.inappropriateIOCTLForDevice)) }
        if let session, !Self.allowed(expected, on: session.direction) {
            return Decoded(result: .failure(.invalidArgument))
        }
        let size = Int(RequestBuffer(bytes: argument).size)
        let structSize = expected.structSize
        guard size >= structSize else { return Decoded(result: .failure(.invalidArgument)) }
        // Bytes the caller claims but did not supply stand for unmapped memory.
        guard size <= argument.count else { return Decoded(result: .failure(.badAddress)) }
        if argument[structSize..<size].contains(where: { $0 != 0 }) {
            return Decoded(result: .failure(.argListTooLong))
        }
        return Decoded(result: .success(RequestBuffer(bytes: Array(argument[0..<structSize]))),
                       copyBack: min(size, structSize))
    }

    private static func allowed(_ request: LiveUpdateRequest, on direction: EmulatedSession.Direction) -> Bool {
        switch request {
        case .preserveFD: direction == .outgoing
        case .retrieveFD, .finish: direction == .incoming
        default: true
        }
    }

    private func takeSerial() -> UInt64 {
        defer { nextSerial += 1 }
        return nextSerial
    }

    // MARK: - Simulated kexec (kernel-luo.md §3 "At kexec", §5)

    /// Carries the open outgoing sessions to the next "boot" and drops everything else.
    ///
    /// - Parameters:
    ///   - openSessions: outgoing sessions whose fds are still open somewhere; the others are gone.
    ///   - incompatible: pretend the next kernel cannot read the handed-over data (open gives EIO).
    func simulateKexec(openSessions: Set<UInt64>, incompatible: Bool) -> KexecReport {
        var report = KexecReport(liveUpdateNumber: liveUpdateNumber + 1)
        callLog.record(kexec: liveUpdateNumber + 1)
        var carried: [UInt64: EmulatedSession] = [:]
        for session in outgoing.values.sorted(by: { $0.serial < $1.serial }) {
            guard openSessions.contains(session.serial) else {
                report.droppedSessions.append(session.displayName)
                continue
            }
            let next = EmulatedSession(serial: takeSerial(), name: session.name, direction: .incoming)
            // Each original is let go as soon as it is copied, so the emulator never holds both
            // generations of a large session at once (descriptor limits).
            var pending = Array(session.removeAll().reversed())
            while let entry = pending.popLast() {
                switch copyForNextKernel(entry, session: session) {
                case .copied(let copy): next.add(.init(token: entry.token, file: copy.file, frozenSize: entry.frozenSize))
                    if let violation = copy.violation { report.violations.append(violation) }
                case .lost(let problem): report.violations.append(problem)
                }
            }
            report.sessions.append(.init(name: session.displayName, files: next.entries.count))
            carried[next.serial] = next
        }
        for session in incoming.values where !session.finished {
            report.discardedIncomingSessions.append(session.displayName)
        }
        outgoing = [:]
        incoming = incompatible ? [:] : carried
        preservedFiles = [:]
        deviceInUse = false
        deserializationFailed = incompatible
        liveUpdateNumber += 1
        return report
    }

    private enum CopyResult {
        case copied(Copy)
        case lost(String)
    }

    private struct Copy {
        var file: HeldFile
        var violation: String?
    }

    /// A fresh memfd with the preserved size, contents and offset (and seals from 7.1); the name is lost.
    private func copyForNextKernel(_ entry: EmulatedSession.Entry, session: EmulatedSession) -> CopyResult {
        let source = entry.file.descriptor
        let label = "session '\(session.displayName)' token \(entry.token)"
        do throws(SystemCallError) {
            let currentSize = try FileIO.size(of: source)
            var violation: String?
            if currentSize != entry.frozenSize {
                violation = "\(label): size changed from \(entry.frozenSize) to \(currentSize) bytes after PRESERVE_FD; "
                    + "the kernel forbids this (EPERM), the emulator cannot, so the copy keeps the preserved size"
            }
            let offset = try FileIO.offset(of: source)
            let copy = try Memfd.create(name: "", allowSealing: profile.preservesSeals)
            try FileIO.truncate(copy.borrowed, to: entry.frozenSize)
            try copyContents(from: source, to: copy.borrowed, count: min(currentSize, entry.frozenSize))
            try FileIO.seek(copy.borrowed, to: offset)
            if profile.preservesSeals {
                let seals = try Memfd.seals(of: source)
                if !seals.isEmpty { try Memfd.addSeals(seals, to: copy.borrowed) }
            }
            return .copied(Copy(file: try HeldFile(adopting: copy), violation: violation))
        } catch {
            return .lost("\(label): lost at kexec: \(error)")
        }
    }

    private func copyContents(from source: FileDescriptor, to target: FileDescriptor, count: Int64) throws(SystemCallError) {
        var done: Int64 = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while done < count {
            let wanted = Int(min(Int64(chunk.count), count - done))
            let got = try systemCall("pread") {
                chunk.withUnsafeMutableBytes { Glibc.pread(source.rawValue, $0.baseAddress!, wanted, off_t(done)) }
            }
            if got == 0 { break }
            try FileIO.writeAll(target, Array(chunk[0..<got]), at: done)
            done += Int64(got)
        }
    }
}

/// What a simulated kexec carried and what it could not.
public struct KexecReport: Codable, Sendable, Equatable {
    public struct CarriedSession: Codable, Sendable, Equatable {
        public var name: String
        public var files: Int
    }
    public var liveUpdateNumber: Int
    public var sessions: [CarriedSession] = []
    /// Outgoing sessions whose fds were closed before the kexec: nothing of them survives.
    public var droppedSessions: [String] = []
    /// Incoming sessions not finished: their unretrieved files are freed by this reboot.
    public var discardedIncomingSessions: [String] = []
    /// Rules the kernel enforces that the emulator could only check here.
    public var violations: [String] = []
}
