import FerryControl
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateEmulator
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Prepare and restore of N fds across U units through ferryd (rehearsed against the emulator),
/// next to a bare loop of the same backend calls; and the blackout of a rehearsal.
enum LiveUpdateBench {
    struct Figures {
        var barePreserve: Double
        var bareRetrieve: Double
        var prepare: Double
        var restore: Double
        var preserved: Int
        var restored: Int
        var skipped: Int
        var blackout: Double?
    }

    /// The emulator in a process of its own (`ferryctl emulator serve`), as in a rehearsal: its
    /// descriptors (every preserved file) do not share this process's limit.
    final class Emulator {
        let socketPath: String
        let pid: pid_t
        init(_ level: BehaviourLevel) {
            socketPath = "\(work)/emulator-\(UInt32.random(in: 0...UInt32.max)).sock"
            pid = ferry_bench.run([siblingProgram("ferryctl"), "emulator", "serve", "--socket", socketPath, "--profile", level.rawValue],
                      environment: ["PATH=/usr/bin:/bin"], wait: false)
            while access(socketPath, F_OK) != 0 { usleep(2000) }
        }
        var backend: EmulatorBackend { EmulatorBackend(socketPath: socketPath) }
        func stop() {
            kill(pid, SIGTERM)
            var status: CInt = 0
            waitpid(pid, &status, 0)
        }
    }

    static func emulator(_ level: BehaviourLevel) -> Emulator { Emulator(level) }

    /// The same LUO calls ferryd makes, with nothing around them: seconds to preserve and to retrieve.
    static func bareLoop(fds: Int, level: BehaviourLevel) -> (Double, Double) {
        let host = emulator(level)
        defer { host.stop() }
        var memfds = OwnedFDs()
        for index in 0..<fds { memfds.append(try! Memfd.create(name: "bare-\(index)", contents: [1])) }
        let start = MonotonicClock.now()
        do {
            let device = try! LiveUpdateDevice.open(host.backend)
            let session = try! device.createSession(named: "bare")
            _ = consume device
            for (index, fd) in memfds.rawValues.enumerated() {
                _ = try? session.preserve(FileDescriptor(rawValue: fd), token: UInt64(index + 1))
            }
            let preserved = MonotonicClock.now() - start
            _ = try! EmulatorControl.simulateKexec(socketPath: host.socketPath)
            _ = consume session
            let again = MonotonicClock.now()
            let next = try! LiveUpdateDevice.open(host.backend)
            let incoming = try! next.retrieveSession(named: "bare")
            var retrieved = OwnedFDs()
            for index in 0..<fds {
                if let fd = try? incoming.retrieve(token: UInt64(index + 1)) { retrieved.append(fd) }
            }
            try? incoming.finish()
            return (seconds(preserved), seconds(MonotonicClock.now() - again))
        }
    }

    /// ferryd with `units` units storing `fds` in all, rehearsed once.
    static func throughFerryd(fds: Int, units: Int, level: BehaviourLevel, stay: Bool) -> Figures? {
        let host = emulator(level)
        defer { host.stop() }
        let ferryd = Ferryd(services: units, fds: fds / units, extraArguments: ["--liveupdate-emulator", host.socketPath],
                            stay: stay)
        defer { ferryd.stop(settling: !stay) }
        for index in 0..<units { _ = ferryd.call("StartUnit", ["name": .string("bench\(index).service")]) }
        while ferryd.storedFDs < fds { usleep(2000) }
        ferryd.settle(allowRunning: stay)
        guard var client = try? VarlinkClient(path: ferryd.control),
            let reply = try? client.call(Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: ["rehearse": .bool(true)])),
            reply.error == nil
        else { return nil }
        let update = reply.parameters["report"]
        var restore: [String: JSONValue] = [:]
        while true {
            usleep(5000)
            guard let found = ferryd.call("GetLiveUpdate")?["restore"]?.object, found["found"]?.bool == true else { continue }
            restore = found
            if !stay || found["timings"]?["ready"]?.number != nil { break }
        }
        let timings = restore["timings"]?.object ?? [:]
        func ms(_ key: String) -> Double { (timings[key]?.number ?? 0) / 1e6 }
        let blackout = ["stop", "serialize", "preserve", "kexec", "restore", "ready"].reduce(0.0) { $0 + ms($1) }
        return Figures(barePreserve: 0, bareRetrieve: 0, prepare: ms("serialize") + ms("preserve"), restore: ms("restore"),
                       preserved: update?["preserved"]?.array?.count ?? 0, restored: restore["restored"]?.array?.count ?? 0,
                       skipped: update?["skipped"]?.array?.count ?? 0, blackout: stay ? blackout : nil)
    }

    static func run(sizes: [Int], units: Int) {
        print("")
        print("live update against the emulator: prepare (serialize + preserve) and restore, ferryd vs a bare loop of the same calls")
        print("| profile | fds | units | bare preserve s | ferryd prepare s | ratio | bare retrieve s | ferryd restore s | ratio | carried | skipped |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for (level, fds) in sizes.map({ (BehaviourLevel.v7_2, $0) }) + [(BehaviourLevel.v6_19, 1000)] {
            let (barePreserve, bareRetrieve) = bareLoop(fds: fds, level: level)
            guard let figures = throughFerryd(fds: fds, units: units, level: level, stay: false) else {
                print("| \(level.rawValue) | \(fds) | \(units) | rehearsal failed |")
                continue
            }
            print("| \(level.rawValue) | \(fds) | \(units) | \(format(barePreserve)) | \(format(figures.prepare)) | \(format(figures.prepare / barePreserve, 2)) | \(format(bareRetrieve)) | \(format(figures.restore)) | \(format(figures.restore / bareRetrieve, 2)) | \(figures.restored) | \(figures.skipped) |")
        }
        print("")
        print("blackout of a rehearsal: 100 notify services × 10 memfds (stop → first service ready)")
        if let figures = throughFerryd(fds: 1000, units: 100, level: .v7_2, stay: true), let blackout = figures.blackout {
            print("| services | fds | blackout s | carried |")
            print("|---|---|---|---|")
            print("| 100 | 1000 | \(format(blackout)) | \(figures.restored) |")
        } else {
            print("blackout rehearsal failed")
        }
    }

    static func format(_ value: Double, _ digits: Int = 3) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        return "\(rounded)"
    }
}
