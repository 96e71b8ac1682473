// The emulated kernel (LiveUpdateEmulator's EmulatedKernel), driven in-process exactly as its
// socket server drives it: each input is a program of operations (open and close the device,
// ioctls on the device and on the sessions it handed out, with raw or well-formed arguments and
// real memfds as payloads, closes, changes to preserved files, simulated kexecs) for one profile.
//
// The server's own socket handling (SCM_RIGHTS, hang-ups) is not in here; its packet decoding is
// fuzz-emulator-wire.
import FerrySystem
import FuzzSupport
import LiveUpdate
import SystemPackage
@testable import LiveUpdateEmulator

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let lowestFreeBefore = lowestFreeDescriptor()
    run(FuzzReader(bytes(data, size)))
    // Everything the kernel held is gone with it: no descriptor may outlive the input.
    let lowestFreeAfter = lowestFreeDescriptor()
    require(lowestFreeAfter == lowestFreeBefore, "descriptor leak: lowest free fd \(lowestFreeBefore) → \(lowestFreeAfter)")
    return 0
}

/// The server's view: which sessions are handed out (their fds open), whether the device is open.
func run(_ input: FuzzReader) {
    var input = input
    let level = BehaviourLevel.allCases[Int(input.byte()) % BehaviourLevel.allCases.count]
    let kernel = EmulatedKernel(profile: EmulatorProfile(level))
    var deviceOpen = false
    var sessions: [EmulatedSession] = []
    // Our own duplicates of memfds handed to PRESERVE_FD, to change them afterwards.
    var memfds: [CInt] = []
    defer { memfds.forEach { _ = close($0) } }
    var operations = 0
    while !input.isAtEnd && operations < 64 {
        operations += 1
        switch input.byte() % 8 {
        case 0:
            let refused = kernel.openDevice()
            if deviceOpen {
                require(refused == .resourceBusy || refused == .ioError, "a second open gave \(String(describing: refused))")
            } else {
                require(refused == nil || refused == .ioError, "open gave \(String(describing: refused))")
            }
            if refused == nil { deviceOpen = true }
        case 1:
            if deviceOpen {
                kernel.deviceClosed()
                deviceOpen = false
            }
        case 2:
            guard deviceOpen else { continue }
            let (request, argument, flags) = ioctl(&input, session: false)
            let outcome = kernel.deviceIoctl(request: request, argument: argument, flags: flags)
            check(outcome, request: request, argument: argument)
            if case .session(let session)? = outcome.handOut { sessions.append(session) }
        case 3, 4:
            guard !sessions.isEmpty else { continue }
            let session = sessions[Int(input.byte()) % sessions.count]
            let (request, argument, flags) = ioctl(&input, session: true)
            var payload: OwnedFD? = nil
            if flags.contains(.payloadAttached) { payload = makePayload(&input, keeping: &memfds) }
            let outcome = kernel.sessionIoctl(session, request: request, argument: argument, payload: payload.take(), flags: flags)
            check(outcome, request: request, argument: argument)
            if case .session? = outcome.handOut { require(false, "a session ioctl handed out a session") }
        case 5:
            guard !sessions.isEmpty else { continue }
            kernel.sessionClosed(sessions.remove(at: Int(input.byte()) % sessions.count))
        case 6:
            // A process changes a file it preserved: size, contents, seals.
            guard !memfds.isEmpty else { continue }
            let fd = memfds[Int(input.byte()) % memfds.count]
            switch input.byte() % 3 {
            case 0: _ = ftruncate(fd, off_t(input.u16()))
            case 1:
                let chunk = [UInt8](repeating: 0x5A, count: Int(input.byte()))
                _ = pwrite(fd, chunk, chunk.count, off_t(input.u16()))
            default: _ = try? Memfd.addSeals(Memfd.Seals(rawValue: CInt(input.byte() & 0x3F)), to: FileDescriptor(rawValue: fd))
            }
        default:
            // The server passes the outgoing sessions whose fds are open, then cuts off every old fd.
            let open = Set(sessions.filter { $0.direction == .outgoing }.map(\.serial))
            let report = kernel.simulateKexec(openSessions: open, incompatible: input.byte() == 0xFF)
            require(report.sessions.count == open.count, "kexec carried \(report.sessions.count) of \(open.count) open sessions")
            sessions = []
            deviceOpen = false
        }
    }
}

/// An ioctl: a known request or any number; no argument, raw bytes, or a struct built for the request.
func ioctl(_ input: inout FuzzReader, session: Bool) -> (UInt32, [UInt8]?, EmulatorWire.Flags) {
    let choice = input.byte()
    let known = LiveUpdateRequest.allCases[Int(choice) % LiveUpdateRequest.allCases.count]
    let request = choice >= 0xF0 ? input.u32() : UInt32(known.rawValue)
    var flags = EmulatorWire.Flags(rawValue: UInt32(input.byte() & 0x0F))
    let argument: [UInt8]?
    switch input.byte() % 4 {
    case 0:
        flags.insert(.nullArgument)
        argument = nil
    case 1:
        argument = input.shortBlob()
    default:
        let extra = Int(input.byte() % 16)
        var buffer = RequestBuffer(for: known, extra: extra)
        if input.byte() & 1 == 1 { buffer.size = UInt32(input.byte()) }  // a lying size
        switch known {
        case .createSession, .retrieveSession, .getName:
            let name = input.shortBlob()
            buffer.name = name
            if name.count >= LiveUpdateLimits.sessionNameCapacity { buffer.bytes[8 + 63] = name[63] }  // unterminated
            if known == .getName { buffer.reserved = input.byte() == 0xEE ? 1 : 0 }
        case .preserveFD, .retrieveFD:
            buffer.token = UInt64(input.byte() % 8)
            buffer.fd = 1000
        case .finish:
            buffer.reserved = input.byte() == 0xEE ? 1 : 0
        }
        if extra > 0, input.byte() == 0xEE { buffer.bytes[buffer.bytes.count - 1] = 1 }  // a non-zero tail
        argument = buffer.bytes
    }
    _ = session
    return (request, argument, flags.subtracting(flags.contains(.nullArgument) && argument != nil ? [.nullArgument] : []))
}

/// What PRESERVE_FD may be given: a memfd (sealed or not), a memfd with links (not preservable),
/// a pipe, or nothing.
func makePayload(_ input: inout FuzzReader, keeping memfds: inout [CInt]) -> OwnedFD? {
    switch input.byte() % 4 {
    case 0, 1:
        guard let fd = try? Memfd.create(name: "fuzz", contents: input.shortBlob()) else { return nil }
        if input.byte() & 1 == 1 { _ = try? Memfd.addSeals(Memfd.Seals(rawValue: CInt(input.byte())), to: fd.borrowed) }
        if memfds.count < 8 {
            let copy = dup(fd.rawValue)
            if copy >= 0 { memfds.append(copy) }
        }
        return fd
    case 2:
        var ends: [CInt] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        close(ends[1])
        return OwnedFD(adopting: ends[0])
    default:
        return nil
    }
}

func check(_ outcome: EmulatedKernel.Outcome, request: UInt32, argument: [UInt8]?) {
    if outcome.errno != nil {
        require(outcome.handOut == nil && outcome.output.isEmpty, "a failed ioctl handed something out")
        return
    }
    require(outcome.output.count <= (argument?.count ?? 0), "more bytes copied back than the caller gave")
    let kind = LiveUpdateRequest(rawValue: UInt(request))
    require(kind != nil, "request \(request) succeeded")
    if outcome.handOut != nil { require(kind?.returnsDescriptor == true, "\(kind!) handed out a descriptor") }
}

func lowestFreeDescriptor() -> CInt {
    let fd = dup(0)
    if fd >= 0 { close(fd) }
    return fd
}

runFuzzer(testOneInput)
