import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a case works with: the backend, the open device, unique names, and the sessions that must
/// stay open until the kexec.
public final class ConformanceContext: @unchecked Sendable {
    public let backend: any LiveUpdateBackend
    public let level: BehaviourLevel
    /// Distinguishes this run's single-stage session names from any other run's.
    public let runID: String
    public private(set) var device: LiveUpdateDevice?
    /// Session fds kept open until the kexec; closing them would drop their files.
    private var kept = OwnedFDs()

    public init(backend: any LiveUpdateBackend, level: BehaviourLevel) throws(LiveUpdateError) {
        self.backend = backend
        self.level = level
        self.runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        self.device = try LiveUpdateDevice.open(backend)
    }

    /// A name unique to this run (single-stage cases).
    public func name(_ suffix: String) -> String { "fc-\(runID)-\(suffix)" }

    /// The fixed name of a session carried across the kexec (both stages must agree).
    public static func carriedName(_ suffix: String) -> String { "ferry-conformance-\(suffix)" }

    public var deviceFD: CInt { device?.descriptor.rawValue ?? -1 }

    /// CREATE_SESSION through the library; its errors are observations.
    public func create(_ name: String) throws(LiveUpdateError) -> LiveUpdateSession {
        guard let session = try device?.createSession(named: name) else { throw Self.noDevice }
        return session
    }

    /// RETRIEVE_SESSION through the library; its errors are observations.
    public func retrieve(_ name: String) throws(LiveUpdateError) -> LiveUpdateSession {
        guard let session = try device?.retrieveSession(named: name) else { throw Self.noDevice }
        return session
    }

    private static let noDevice = LiveUpdateError(.system(.badFileDescriptor), operation: "device closed")

    /// A setup step: a session the case needs, or a failure that names it.
    public func createSession(_ name: String) throws -> LiveUpdateSession {
        do throws(LiveUpdateError) { return try create(name) } catch {
            throw ConformanceFailure("create session '\(name)': \(error)")
        }
    }

    public func retrieveSession(_ name: String) throws -> LiveUpdateSession {
        do throws(LiveUpdateError) { return try retrieve(name) } catch {
            throw ConformanceFailure("retrieve session '\(name)': \(error)")
        }
    }

    public func duplicateDevice() throws -> OwnedFD {
        let raw = deviceFD
        guard raw >= 0 else { throw ConformanceFailure("device closed") }
        return try OwnedFD.duplicating(raw)
    }

    /// Keeps `session` open until the kexec.
    public func keepUntilKexec(_ session: consuming LiveUpdateSession) {
        kept.append(session.releaseDescriptor())
    }

    /// Closes the device, then opens it again (sessions do not depend on it).
    public func reopenDevice() throws {
        device = nil
        do throws(LiveUpdateError) { device = try LiveUpdateDevice.open(backend) } catch {
            throw ConformanceFailure("reopen device: \(error)")
        }
    }

    /// Closes the device for good (before a kexec, nothing else may need it).
    public func closeDevice() { device = nil }

    /// An ioctl on the device exactly as given.
    public func deviceIoctl(_ request: UInt, _ argument: RequestBuffer?) -> (Errno?, RequestBuffer?) {
        var argument = argument
        let code = backend.ioctl(deviceFD, request: request, argument: &argument)
        if code == nil, let returned = argument, LiveUpdateRequest(rawValue: request)?.returnsDescriptor == true {
            // A session fd was installed: close it so the case leaves nothing behind.
            Glibc.close(returned.fd)
        }
        return (code, argument)
    }

    public func memfd(_ name: String, _ contents: [UInt8] = Array("ferry".utf8)) throws -> OwnedFD {
        do throws(SystemCallError) { return try Memfd.create(name: name, contents: contents) } catch {
            throw ConformanceFailure("memfd_create: \(error)")
        }
    }
}

extension LiveUpdateSession {
    /// An ioctl on this session exactly as given, returning the errno observation text.
    public func raw(_ request: UInt, _ argument: RequestBuffer?) -> String {
        var argument = argument
        return observe(rawIoctl(request, &argument))
    }

    /// PRESERVE_FD as a raw ioctl, observed.
    public func preserveObserved(_ fd: CInt, token: UInt64) -> String {
        var buffer = RequestBuffer(for: .preserveFD)
        buffer.fd = fd
        buffer.token = token
        return raw(LiveUpdateRequest.preserveFD.rawValue, buffer)
    }
}
