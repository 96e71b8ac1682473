import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

/// One rule of kernel-luo.md as a runnable case: what it does, and what each behaviour level answers.
///
/// A case observes a short text (`ok`, an errno name such as `EBUSY`, or a value such as
/// `size=65636`); it passes when that equals the expectation for the level under test. The
/// same texts from the kernel and the emulator can be compared line by line.
public struct ConformanceCase: Sendable {
    public enum Stage: String, Sendable {
        /// Runs in one boot.
        case single
        /// Prepares sessions that must survive the kexec; runs before it.
        case beforeKexec = "before-kexec"
        /// Checks what came back; runs after the kexec.
        case afterKexec = "after-kexec"
    }

    public let id: String
    /// The spec section, e.g. `§2.5`.
    public let section: String
    public let summary: String
    public let stage: Stage
    /// The expected observation per level; nil means the case does not apply to that level.
    public let expected: @Sendable (BehaviourLevel) -> String?
    /// Where the emulator cannot do what the kernel does, what it observes instead and why.
    public let emulatorDeviation: Deviation?
    public let body: @Sendable (ConformanceContext) throws -> String

    public struct Deviation: Sendable {
        public var observed: String
        public var reason: String
    }

    public init(_ id: String, _ section: String, _ summary: String, stage: Stage = .single,
                expect expected: @escaping @Sendable (BehaviourLevel) -> String?,
                emulatorDeviation: Deviation? = nil,
                body: @escaping @Sendable (ConformanceContext) throws -> String) {
        self.id = id
        self.section = section
        self.summary = summary
        self.stage = stage
        self.expected = expected
        self.emulatorDeviation = emulatorDeviation
        self.body = body
    }
}

/// Expectation helpers that read like the spec.
public enum Expect {
    /// The same answer on every level.
    public static func always(_ value: String) -> @Sendable (BehaviourLevel) -> String? { { _ in value } }

    /// `new` from `level` on, `old` before it.
    public static func since(_ level: BehaviourLevel, _ new: String, before old: String)
        -> @Sendable (BehaviourLevel) -> String?
    {
        { $0 >= level ? new : old }
    }
}

/// A case could not even be carried out (setup failed); the message says which step.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The observation text for an ioctl's result.
public func observe(_ errno: Errno?) -> String { errno.map { $0.symbolicName } ?? "ok" }

/// Runs a throwing step, turning any error into a `ConformanceFailure` that names the step.
public func step<T: ~Copyable>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw ConformanceFailure("\(what): \(error)") }
}

/// The errno observation of a call that throws a LiveUpdateError or SystemCallError.
public func observing(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "ok"
    } catch {
        return observation(of: error)
    }
}

func observation(of error: any Error) -> String {
    if let failure = error as? LiveUpdateError {
        if let code = failure.errno { return code.symbolicName }
        return "\(failure.kind)"
    }
    if let failure = error as? SystemCallError { return failure.errno.symbolicName }
    return "\(error)"
}
