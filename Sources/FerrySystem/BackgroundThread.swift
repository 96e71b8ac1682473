#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread running one closure, joined explicitly.
///
/// For work that must not run on Swift's cooperative pool: blocking event loops such as the
/// emulator's server loop.
public final class BackgroundThread: Sendable {
    private let handle: pthread_t

    private final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    public init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
        handle = thread
    }

    /// Waits for the closure to return.
    public func join() { pthread_join(handle, nil) }
}
