import CFerry
import FerrySystem
import LiveUpdate
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs an emulator server on a thread of this process: for tests, rehearsals and the demo.
///
/// The emulator's memory is then this process; `stop()` ends it, and with it every session.
public final class EmulatorHost: Sendable {
    public let socketPath: String
    public let profile: EmulatorProfile
    private let thread: BackgroundThread
    private let stopHandle: EmulatorServer.StopHandle

    private final class Startup: @unchecked Sendable {
        var handle: EmulatorServer.StopHandle?
        var error: SystemCallError?
        let ready: OwnedFD
        let signal: CInt
        init() {
            var fds: [CInt] = [-1, -1]
            _ = ferry_pipe_cloexec(&fds)
            ready = OwnedFD(adopting: fds[0])
            signal = fds[1]
        }
        private var announced = false
        /// Tells the starting thread the outcome, once (run() failing later must not close the
        /// descriptor number again): one byte, then the close. The byte, not only the close, is
        /// what ThreadSanitizer sees as ordering `handle`/`error` before the read.
        func announce() {
            guard !announced else { return }
            announced = true
            var byte: UInt8 = 1
            _ = Glibc.write(signal, &byte, 1)
            Glibc.close(signal)
        }
    }

    /// Starts a server on `socketPath` and returns once it listens.
    public init(socketPath: String, profile: EmulatorProfile, logger: Logger = Logger(label: "ferry.luo-emulator"))
        throws(SystemCallError)
    {
        let startup = Startup()
        thread = BackgroundThread {
            do throws(SystemCallError) {
                let server = try EmulatorServer(socketPath: socketPath, profile: profile, logger: logger)
                startup.handle = server.stopHandle
                startup.announce()
                try server.run()
            } catch {
                startup.error = error
                startup.announce()
            }
        }
        var byte: UInt8 = 0
        _ = try? systemCall("read") { Glibc.read(startup.ready.rawValue, &byte, 1) }
        guard let handle = startup.handle else {
            thread.join()
            throw startup.error ?? SystemCallError("emulator start", .ioError)
        }
        self.socketPath = socketPath
        self.profile = profile
        self.stopHandle = handle
    }

    public var backend: EmulatorBackend { EmulatorBackend(socketPath: socketPath) }

    /// Stops the server and waits for its thread; every emulated session ends with it.
    public func stop() {
        stopHandle.stop()
        thread.join()
    }
}
