#if canImport(Glibc)
import Glibc
#endif

/// ferryd's resident memory: with `units` units loaded and nothing stored (the baseline), then
/// holding `units × fdsPerUnit` fds, each unit's sender gone (its store pinned). Goal: at most
/// 30 MiB resident holding 10,000 fds.
enum MemoryBench {
    static func run(units: Int, fdsPerUnit: Int) {
        let total = units * fdsPerUnit
        let ferryd = Ferryd(services: units, fds: fdsPerUnit)
        defer { ferryd.stop() }
        usleep(300_000)
        let idle = (ferryd.residentKiB, ferryd.peakResidentKiB)
        // A few starts at a time: each is a process that sends its memfds and exits.
        for index in 0..<units {
            _ = ferryd.call("StartUnit", ["name": .string("bench\(index).service")])
            if index % 50 == 49 { while ferryd.storedFDs < (index + 1 - 25) * fdsPerUnit { usleep(2000) } }
        }
        while ferryd.storedFDs < total { usleep(20_000) }
        ferryd.settle()
        usleep(300_000)
        let holding = (ferryd.residentKiB, ferryd.peakResidentKiB)
        print("")
        print("ferryd resident memory: \(units) units loaded, then \(total) fds stored (\(fdsPerUnit) per unit, stores pinned)")
        print("| state | VmRSS KiB | VmHWM KiB |")
        print("|---|---|---|")
        print("| idle, \(units) units loaded (baseline) | \(idle.0) | \(idle.1) |")
        print("| holding \(total) fds | \(holding.0) | \(holding.1) |")
        let perFD = Double((holding.0 - idle.0) * 1024) / Double(total)
        print("per stored fd: \(Int(perFD)) bytes; goal ≤ 30 MiB (30720 KiB) holding \(total): \(holding.1 <= 30720 ? "met" : "missed") (peak \(holding.1) KiB)")
    }
}
