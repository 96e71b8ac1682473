import ArgumentParser
import FerrySystem
import LiveUpdate
import ServiceKit

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl demo-service`: the demo's example services.
///
/// - `cache` keeps its state in a memfd in the fd store.
/// - `vmm` owns a LUO session holding its "guest memory" in a memfd, the shape of a VM monitor.
/// Each fills its memory from a seed on first start, and after a live update checks every byte.
struct DemoServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-service", abstract: "An example service for `ferryctl demo`.", shouldDisplay: false)

    @Argument(help: "cache or vmm.") var kind: String
    @Option(help: "Bytes of state.") var size: Int = 1 << 20
    @Option(help: "Seed of the content.") var seed: UInt64 = 7

    func run() throws {
        do {
            switch kind {
            case "cache": try cache()
            case "vmm": try vmm()
            default: throw ValidationError("unknown kind \(kind)")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("demo-service \(kind): \(error)")
            try? Notifier.send("STATUS=failed: \(error)")
            throw ExitCode(1)
        }
        // Serve until stopped.
        while true { pause() }
    }

    static func pattern(size: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<size).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    private func cache() throws {
        var listened = ListenedDescriptors.take()
        let expected = Self.pattern(size: size, seed: seed)
        if let fd = listened.take(named: "cache-data") {
            let contents = try FileIO.readAll(fd.borrowed)
            let status = contents == expected ? "verified \(contents.count) bytes" : "MISMATCH: \(contents.count) bytes differ from the seed"
            try Notifier.ready(status: status)
            return
        }
        let memfd = try Memfd.create(name: "cache-data", contents: expected)
        try Notifier.store(memfd.borrowed, name: "cache-data")
        try Notifier.barrier()
        try Notifier.ready(status: "fresh \(expected.count) bytes")
    }

    private func vmm() throws {
        var listened = ListenedDescriptors.take()
        let expected = Self.pattern(size: size, seed: seed)
        if let fd = listened.take(named: "guest") {
            let incoming = try LiveUpdateSession.adopt(fd)
            let memory = try incoming.retrieve(token: 1)
            let contents = try FileIO.readAll(memory.borrowed)
            try incoming.finish()
            // Carry the same memory into a new session for the next update.
            let outgoing = try OwnedSessions.create(named: "demo-vmm-guest")
            try outgoing.preserve(memory.borrowed, token: 1)
            try Notifier.remove(name: "guest")
            try Notifier.store(outgoing.descriptor.borrowed, name: "guest")
            try Notifier.barrier()
            let status = contents == expected ? "verified \(contents.count) bytes" : "MISMATCH: \(contents.count) bytes differ from the seed"
            try Notifier.ready(status: status)
            return
        }
        let session = try OwnedSessions.create(named: "demo-vmm-guest")
        let memory = try Memfd.create(name: "guest-ram", contents: expected)
        try session.preserve(memory.borrowed, token: 1)
        try Notifier.store(session.descriptor.borrowed, name: "guest")
        try Notifier.barrier()
        try Notifier.ready(status: "fresh \(expected.count) bytes")
    }
}
