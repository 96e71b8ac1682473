import ArgumentParser
import FerrySystem
import LiveUpdate
import ServiceKit

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl session memfd save|verify NAME`: a brokered client for tests and demonstrations.
/// `save` preserves a memfd holding TEXT in the outgoing session (the one `session run` handed
/// over, else acquired); `verify` takes it back from the incoming session after the kexec,
/// compares it, and finishes the session.
struct SessionMemfdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memfd", abstract: "Save a memfd in a brokered session, or verify it after a kexec (tests).",
        shouldDisplay: false)

    @OptionGroup var options: BrokerOptions
    @Argument(help: "save or verify.") var mode: String
    @Argument var name: String
    @Option(help: "The memfd's contents.") var text = "brokered-session-test-data"
    @Option(help: "The token it is preserved under.") var token: UInt64 = 1
    @Flag(help: "save: preserve through the broker (counted against the quota) instead of on the session fd.")
    var throughBroker = false

    func run() throws {
        switch mode {
        case "save": try save()
        case "verify": try verify()
        default: throw ValidationError("mode is save or verify")
        }
    }

    private func save() throws {
        let memfd = try Memfd.create(name: "brokered-\(name)", contents: Array(text.utf8))
        if throughBroker {
            do throws(BrokeredSessions.Failure) {
                if BrokeredSessions.inherited() == nil { _ = try BrokeredSessions.acquire(name, socketPath: options.path) }
                let (files, bytes) = try BrokeredSessions.preserve(memfd.borrowed, token: token, in: name, socketPath: options.path)
                print("session \(name): saved token \(token) through the broker (\(files) file(s), \(bytes) byte(s))")
            } catch {
                throw error.failure
            }
            return
        }
        // A unit with LUOSession=NAME has it in LISTEN_FDS (with the incoming one after a kexec:
        // only the outgoing one takes PRESERVE_FD).
        var listened = Self.listened()
        while let fd = listened.take(named: name) {
            guard let session = try? LiveUpdateSession.adopt(fd) else { continue }
            if (try? session.preserve(memfd.borrowed, token: token)) != nil {
                return print("session \(name): saved token \(token) in the session from LISTEN_FDS (\(text.utf8.count) bytes)")
            }
        }
        let session: LiveUpdateSession
        if let inherited = BrokeredSessions.inherited() {
            session = inherited
        } else {
            do throws(BrokeredSessions.Failure) { session = try BrokeredSessions.acquire(name, socketPath: options.path) } catch {
                throw error.failure
            }
        }
        try session.preserve(memfd.borrowed, token: token)
        print("session \(name): saved token \(token) (\(text.utf8.count) bytes)")
    }

    private func verify() throws {
        var listened = Self.listened()
        while let fd = listened.take(named: "\(name)-incoming") ?? listened.take(named: name) {
            guard let session = try? LiveUpdateSession.adopt(fd), let restored = try? session.retrieve(token: token) else { continue }
            return try check(session, restored, from: "LISTEN_FDS")
        }
        let incoming: LiveUpdateSession
        if let inherited = BrokeredSessions.inherited(BrokeredSessions.incomingSessionFDVariable) {
            incoming = inherited
        } else {
            let retrieved: LiveUpdateSession?
            do throws(BrokeredSessions.Failure) { retrieved = try BrokeredSessions.retrieve(name, socketPath: options.path) } catch {
                throw error.failure
            }
            guard let retrieved else {
                throw Failure(code: "no-such-session", message: "no incoming session '\(name)' waiting for this caller", exitStatus: 1)
            }
            incoming = retrieved
        }
        try check(incoming, try incoming.retrieve(token: token), from: "the broker")
    }

    /// LISTEN_FDS, when given: then the FERRY_*SESSION_FD variables name the same fds, now owned here.
    static func listened() -> ListenedDescriptors {
        let listened = ListenedDescriptors.take()
        if listened.count > 0 {
            unsetenv(BrokeredSessions.sessionFDVariable)
            unsetenv(BrokeredSessions.incomingSessionFDVariable)
        }
        return listened
    }

    private func check(_ incoming: borrowing LiveUpdateSession, _ fd: borrowing OwnedFD, from source: String) throws {
        let contents = String(decoding: try FileIO.readAll(fd.borrowed), as: UTF8.self)
        guard contents == text else {
            throw Failure(code: "mismatch", message: "session \(name) token \(token): read '\(contents.prefix(100))', expected '\(text)'", exitStatus: 1)
        }
        try incoming.finish()
        print("session \(name): verified token \(token) from \(source) (\(contents.utf8.count) bytes), finished")
    }
}
