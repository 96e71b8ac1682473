import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The descriptors a supervisor handed over: `LISTEN_FDS` at 3, 4, ... with `LISTEN_FDNAMES`,
/// valid only when `LISTEN_PID` is this process.
public struct ListenedDescriptors: ~Copyable {
    /// Names in the order of the descriptors; names repeat, so match by name, not position.
    public let names: [String]
    private var descriptors: OwnedFDs

    /// Takes ownership of the passed descriptors (close-on-exec from now on) and clears the
    /// variables so children do not believe the fds are theirs.
    public static func take() -> ListenedDescriptors {
        defer {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
            unsetenv("LISTEN_PID")
        }
        guard let pidText = getenv("LISTEN_PID"), pid_t(String(cString: pidText)) == getpid(),
            let countText = getenv("LISTEN_FDS"), let count = Int(String(cString: countText)), count > 0, count < 65536
        else { return ListenedDescriptors(names: [], descriptors: OwnedFDs()) }
        var names = getenv("LISTEN_FDNAMES").map { String(cString: $0).split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        if names.count != count { names = Array(repeating: "unknown", count: count) }
        let raw = (0..<count).map { CInt(3 + $0) }
        for fd in raw { try? FileDescriptor(rawValue: fd).setCloseOnExec() }
        return ListenedDescriptors(names: names, descriptors: OwnedFDs(adopting: raw))
    }

    public var count: Int { names.count }

    /// No descriptors at all.
    public static var none: ListenedDescriptors { ListenedDescriptors(names: [], descriptors: OwnedFDs()) }

    /// Every descriptor still here, in the order of `names` (a taken one is -1).
    public consuming func takeAll() -> OwnedFDs {
        descriptors
    }

    /// Takes the first descriptor called `name` out (nil if none is left).
    public mutating func take(named name: String) -> OwnedFD? {
        for (index, candidate) in names.enumerated() where candidate == name {
            if let fd = descriptors.take(at: index) { return fd }
        }
        return nil
    }

    /// The raw number of the first descriptor called `name`, still owned here.
    public func descriptor(named name: String) -> CInt? {
        for (index, candidate) in names.enumerated() where candidate == name && descriptors.rawValues[index] >= 0 {
            return descriptors.rawValues[index]
        }
        return nil
    }
}
