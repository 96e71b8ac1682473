import ArgumentParser
import FerrySystem
import LiveUpdate
import ServiceKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl test-service`: the service of the live-update scenario (reference-systemd.md §6), the
/// same behaviour as systemd's test-luo, written with ServiceKit.
struct TestServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test-service", abstract: "A service for live-update tests (store, check, store-hijack, check-hijack).",
        shouldDisplay: false)

    @Argument(help: "store, check, store-hijack, check-hijack, store-many, check-many or prepare (prefix: ok or refuse:REASON).")
    var mode: String
    @Argument(help: "Prefix of the service-owned session's name (for store-many/check-many: how many memfds).")
    var prefix: String = "luosession"
    @Option(help: "The name of Ferry's own session, for the hijack modes.") var hijackName: String = "ferry"

    static let data = ["testfd1": "liveupdate-test-data-1", "testfd2": "liveupdate-test-data-2"]
    static let sessionData = "luo-session-memfd-test-data"

    func run() throws {
        do {
            switch mode {
            case "store": try store()
            case "check": try check()
            case "store-hijack": try storeHijack()
            case "check-hijack": try checkHijack()
            case "notify": try Notifier.send("STATUS=\(prefix)")
            case "bench-preserve": try benchPreserve()
            case "bench-retrieve": try benchRetrieve()
            case "store-many": try storeMany()
            case "check-many": try checkMany()
            case "prepare": try answerPrepareBarrier()
            default: throw ValidationError("unknown mode \(mode)")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("test-service \(mode): \(error)")
            throw ExitCode(1)
        }
        print("test-service \(mode) \(prefix): ok")
    }

    /// Stores a memfd, becomes ready, then answers the prepare barrier with ServiceKit as the
    /// prefix says (`ok`, or `refuse:REASON`) and notes a resume in its status; runs until stopped.
    private func answerPrepareBarrier() throws {
        let signals = try LiveUpdatePreparation.signalDescriptor()
        let memfd = try Memfd.create(name: "state", contents: Array("swift-state".utf8))
        try Notifier.store(memfd.borrowed, name: "state")
        try Notifier.barrier()
        try Notifier.ready()
        while true {
            var entry = pollfd(fd: signals.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, -1) >= 0 || errno == EINTR else { throw ValidationError("poll: errno \(errno)") }
            for signal in SignalFD.drain(signals.borrowed) {
                if signal == LiveUpdatePreparation.prepareSignal {
                    if prefix.hasPrefix("refuse:") { try LiveUpdatePreparation.refuse(String(prefix.dropFirst(7))) } else {
                        try LiveUpdatePreparation.prepared()
                    }
                } else if signal == LiveUpdatePreparation.resumeSignal {
                    try Notifier.send("STATUS=resumed")
                }
            }
        }
    }

    private func store() throws {
        for (name, text) in Self.data.sorted(by: { $0.key < $1.key }) {
            let memfd = try Memfd.create(name: name, contents: Array(text.utf8))
            try Memfd.addSeals([.shrink, .grow, .write, .seal], to: memfd.borrowed)
            try Notifier.store(memfd.borrowed, name: name)
        }
        let session = try OwnedSessions.create(named: "\(prefix)-direct")
        let memfd = try Memfd.create(name: "luo-session-memfd", contents: Array(Self.sessionData.utf8))
        try session.preserve(memfd.borrowed, token: 42)
        try Notifier.store(session.descriptor.borrowed, name: "\(prefix)-direct")
        try Notifier.barrier()
    }

    private func check() throws {
        var listened = ListenedDescriptors.take()
        guard listened.count > 0 else { throw Failure("no LISTEN_FDS") }
        for (name, text) in Self.data {
            guard let fd = listened.descriptor(named: name) else { throw Failure("\(name) missing from \(listened.names)") }
            let contents = try FileIO.readAll(FileDescriptor(rawValue: fd))
            guard contents == Array(text.utf8) else { throw Failure("\(name) holds '\(String(decoding: contents, as: UTF8.self))'") }
            try Notifier.remove(name: name)
        }
        guard let sessionFD = listened.take(named: "\(prefix)-direct") else {
            throw Failure("\(prefix)-direct missing from \(listened.names)")
        }
        let session = try LiveUpdateSession.adopt(sessionFD)
        let restored = try session.retrieve(token: 42)
        let contents = try FileIO.readAll(restored.borrowed)
        guard contents == Array(Self.sessionData.utf8) else { throw Failure("session memfd holds '\(String(decoding: contents, as: UTF8.self))'") }
        try session.finish()
        try Notifier.remove(name: "\(prefix)-direct")
        try Notifier.barrier()
    }

    private func storeHijack() throws {
        let session = try OwnedSessions.create(named: hijackName)
        let memfd = try Memfd.create(name: "hijack", contents: Array("hijack".utf8))
        try session.preserve(memfd.borrowed, token: 99)
        try Notifier.store(session.descriptor.borrowed, name: "hijackfd")
        try Notifier.barrier()
    }

    private func checkHijack() throws {
        let listened = ListenedDescriptors.take()
        if listened.names.contains("hijackfd") { throw Failure("hijackfd was restored") }
    }

    /// `prefix` memfds named bulk-N, each holding "bulk N", sent 250 to a message.
    private func storeMany() throws {
        let count = Int(prefix) ?? 1000
        for batch in stride(from: 0, to: count, by: 250) {
            var fds = OwnedFDs()
            for index in batch..<min(batch + 250, count) {
                fds.append(try Memfd.create(name: "bulk-\(index)", contents: Array("bulk \(index)".utf8)))
            }
            try Notifier.send("FDSTORE=1\nFDNAME=bulk", descriptors: fds.rawValues)
        }
        try Notifier.barrier(timeoutMilliseconds: 60_000)
    }

    private func checkMany() throws {
        let count = Int(prefix) ?? 1000
        let listened = ListenedDescriptors.take()
        guard listened.names.filter({ $0 == "bulk" }).count == count else {
            throw Failure("expected \(count) bulk fds, got \(listened.names.filter { $0 == "bulk" }.count)")
        }
        var seen = Set<String>()
        for fd in 3..<(3 + listened.count) {
            seen.insert(String(decoding: try FileIO.readAll(FileDescriptor(rawValue: CInt(fd))), as: UTF8.self))
        }
        guard seen == Set((0..<count).map { "bulk \($0)" }) else { throw Failure("bulk contents differ") }
    }

    /// The bare loop of the live-update benchmark, before the kexec: `prefix` memfds preserved one
    /// by one in a session of its own, which goes into the fd store to ride the kexec.
    private func benchPreserve() throws {
        let count = Int(prefix) ?? 1000
        var memfds = OwnedFDs()
        for index in 0..<count { memfds.append(try Memfd.create(name: "bench-\(index)", contents: Array("bench \(index)".utf8))) }
        let start = MonotonicClock.microseconds()
        let session = try OwnedSessions.create(named: "ferry-bare-bench")
        for (index, fd) in memfds.rawValues.enumerated() { try session.preserve(FileDescriptor(rawValue: fd), token: UInt64(index + 1)) }
        let elapsed = MonotonicClock.microseconds() - start
        try Notifier.store(session.descriptor.borrowed, name: "bare-bench")
        try Notifier.barrier()
        print("FERRY-VM bench: bare loop: create session + preserve \(count) memfds: \(Double(elapsed) / 1000) ms")
    }

    /// After the kexec: retrieve every token of the bare session, check the contents, finish.
    private func benchRetrieve() throws {
        let count = Int(prefix) ?? 1000
        var listened = ListenedDescriptors.take()
        guard let fd = listened.take(named: "bare-bench") else { throw Failure("bare-bench session missing from \(listened.names)") }
        let start = MonotonicClock.microseconds()
        let session = try LiveUpdateSession.adopt(fd)
        var retrieved = OwnedFDs()
        for index in 0..<count { retrieved.append(try session.retrieve(token: UInt64(index + 1))) }
        try session.finish()
        let elapsed = MonotonicClock.microseconds() - start
        for (index, raw) in retrieved.rawValues.enumerated() {
            guard try FileIO.readAll(FileDescriptor(rawValue: raw)) == Array("bench \(index)".utf8) else {
                throw Failure("bench memfd \(index) differs")
            }
        }
        try Notifier.remove(name: "bare-bench")
        try Notifier.barrier()
        print("FERRY-VM bench: bare loop: retrieve \(count) memfds + finish: \(Double(elapsed) / 1000) ms")
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
