import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// fd-store ingestion: K senders, their memfds made before the clock starts, all released at once
/// through a FIFO, storing B fds per datagram; the clock stops when every sender's barrier came
/// back (everything it sent was handled). The same senders feed ferryd and a bare loop.
enum IngestionBench {
    /// The go and done FIFOs of one measurement.
    struct Signals {
        let go: String
        let done: String
        init(_ tag: String) {
            go = "\(work)/go-\(tag)"
            done = "\(work)/done-\(tag)"
            unlink(go)
            unlink(done)
            mkfifo(go, 0o600)
            mkfifo(done, 0o600)
        }

        func senderArguments(fds: Int, batch: Int) -> String { "\(fds) --batch \(batch) --go \(go) --done \(done)" }

        /// Opens the done FIFO (read-write, so opening never blocks and senders never see it
        /// without a reader) and releases every sender waiting on the go FIFO. The go end stays
        /// open until `finish`: a sender that said READY=1 but has not reached its open() yet
        /// must still get through.
        func release() -> (go: CInt, done: CInt) {
            let finished = open(done, O_RDWR | O_CLOEXEC)
            return (open(go, O_WRONLY | O_CLOEXEC), finished)
        }

        func finish(_ ends: (go: CInt, done: CInt)) {
            close(ends.go)
            close(ends.done)
        }
    }

    /// The baseline: a loop that receives on a socket made like ferryd's notify socket (SO_PASSCRED,
    /// an 8 MiB buffer), with the same receive call and the same 256-datagram drain per wake-up, and
    /// holds every fd (as a store does) until the clock stops.
    static func bareRate(senders: Int, fds: Int, batch: Int) -> Double {
        let path = "\(work)/bare.sock"
        unlink(path)
        let socket = try! UnixSocket.listen(path: path, kind: .datagram)
        try! UnixSocket.enablePassCredentials(socket.borrowed)
        var size: CInt = 8 << 20
        setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<CInt>.size))
        let signals = Signals("bare")
        var children: [pid_t] = []
        for _ in 0..<senders {
            let arguments = signals.senderArguments(fds: fds, batch: batch).split(separator: " ").map(String.init)
            children.append(ferry_bench.run([sender] + arguments, environment: ["NOTIFY_SOCKET=\(path)"], wait: false))
        }
        var ready = 0
        while ready < senders {
            guard let message = try? UnixSocket.receive(socket.borrowed, maximumBytes: 4096, maximumDescriptors: 253,
                                                         credentials: true) else { continue }
            if message.bytes.starts(with: Array("READY=1".utf8)) { ready += 1 }
        }
        let start = MonotonicClock.now()
        let ends = signals.release()
        let finished = ends.done
        var held: [CInt] = []
        held.reserveCapacity(senders * fds)
        var done = 0
        var polls = [pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: finished, events: Int16(POLLIN), revents: 0)]
        while done < senders {
            guard poll(&polls, 2, -1) > 0 else { continue }
            if polls[0].revents != 0 {
                for _ in 0..<256 {
                    guard var message = try? UnixSocket.receive(socket.borrowed, maximumBytes: 4096, maximumDescriptors: 253,
                                                                 nonBlocking: true, credentials: true) else { break }
                    // A barrier's fd closes with the message, which releases its sender.
                    if message.bytes.starts(with: Array("FDSTORE=1".utf8)) {
                        for index in 0..<message.descriptors.count {
                            if let fd = message.descriptors.take(at: index) { held.append(fd.release()) }
                        }
                    }
                }
            }
            if polls[1].revents != 0 {
                var bytes = [UInt8](repeating: 0, count: 64)
                done += max(read(finished, &bytes, bytes.count), 0)
            }
        }
        let elapsed = MonotonicClock.now() - start
        signals.finish(ends)
        for fd in held { close(fd) }
        for child in children { var status: CInt = 0; waitpid(child, &status, 0) }
        if held.count != senders * fds { printError("ferry-bench: the bare loop received \(held.count) of \(senders * fds) fds") }
        return Double(senders * fds) / seconds(elapsed)
    }

    /// The same senders as units of a ferryd (Type=notify: started means its memfds are made).
    static func ferrydRate(senders: Int, fds: Int, batch: Int) -> Double {
        let signals = Signals("ferryd")
        let ferryd = Ferryd(services: senders, fds: fds, type: "notify",
                            arguments: signals.senderArguments(fds: fds, batch: batch))
        defer { ferryd.stop() }
        for index in 0..<senders { _ = ferryd.call("StartUnit", ["name": .string("bench\(index).service")]) }
        ferryd.settle(allowRunning: true)
        let start = MonotonicClock.now()
        let ends = signals.release()
        let finished = ends.done
        var done = 0
        while done < senders {
            var bytes = [UInt8](repeating: 0, count: 64)
            done += max(read(finished, &bytes, bytes.count), 0)
        }
        let elapsed = MonotonicClock.now() - start
        signals.finish(ends)
        let stored = ferryd.storedFDs
        if stored != senders * fds { printError("ferry-bench: ferryd stored \(stored) of \(senders * fds) fds") }
        return Double(senders * fds) / seconds(elapsed)
    }

    static func run(senders: Int, fdsPerSender: Int, batches: [Int], runs: Int) {
        print("fd-store ingestion: \(senders) senders × \(fdsPerSender) memfds made beforehand, \(runs) runs each (median; bare and ferryd alternate)")
        print("| fds/datagram | bare recvmsg fds/s | ferryd fds/s | ratio ferryd/bare | goal ≥ 0.5 | ferryd runs |")
        print("|---|---|---|---|---|---|")
        for batch in batches {
            var bare: [Double] = []
            var through: [Double] = []
            for _ in 0..<runs {
                bare.append(bareRate(senders: senders, fds: fdsPerSender, batch: batch))
                through.append(ferrydRate(senders: senders, fds: fdsPerSender, batch: batch))
            }
            let ratio = median(through) / median(bare)
            print("| \(batch) | \(Int(median(bare))) | \(Int(median(through))) | \(LiveUpdateBench.format(ratio, 2)) | \(ratio >= 0.5 ? "met" : "missed") | \(through.map { String(Int($0)) }.joined(separator: ", ")) |")
        }
    }
}
