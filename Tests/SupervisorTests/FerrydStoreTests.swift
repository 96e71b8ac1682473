import FerryControl
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ferryd as a real process with real services: the fd store and LISTEN_FDS.
@Suite struct FerrydStoreTests {
    @Test(.needs(.pythonSystemd)) func storedFDsComeBackOnNextStartWithNames() throws {
        let ferryd = try FerrydInstance(units: [:])
        let report = "\(ferryd.directory.path)/report.json"
        ferryd.writeUnit("a.service", toolUnit("report \(report) store state hello store other world barrier ready exit 0"))
        #expect(try ferryd.start("a.service") == "active (running)")
        #expect(ferryd.waitUntil { try ferryd.state("a.service") == "inactive (dead-resources-pinned)" })
        #expect(try ferryd.storeNames("a.service") == ["state", "other"], "in the order stored")
        let first = try #require(Report.read(report))
        #expect(first.listenFDs == 0)

        ferryd.writeUnit("a.service", toolUnit("report \(report) ready sleep"))
        #expect(try ferryd.start("a.service") == "active (running)")
        let second = try #require(Report.read(report))
        #expect(second.listenFDs == 2)
        #expect(second.listenPID == String(second.pid))
        #expect(second.fds.map(\.name) == ["other", "state"])
        #expect(second.fds.map(\.data) == ["world", "hello"])
        // Exactly stdio and the stored fds (plus the one python opens to list /proc/self/fd):
        // nothing of ferryd's leaks into services.
        #expect(second.open.filter { ![0, 1, 2, 3, 4].contains($0) }.count <= 1, "open fds: \(second.open)")
        #expect(second.sigBlk == "0000000000000000", "signal mask reset")
        #expect(second.env["FDSTORE"] == "10")
        #expect(second.env["NOTIFY_SOCKET"] == ferryd.notify)
    }

    @Test func signalDispositionsAreReset() throws {
        // cat inherits exactly what the spawner left (python would install its own).
        let ferryd = try FerrydInstance(units: [:])
        let out = "\(ferryd.directory.path)/status.txt"
        ferryd.writeUnit("sig.service", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exec cat /proc/self/status > \(out)'\n")
        _ = try ferryd.start("sig.service")
        let status = readText(out)
        #expect(status.contains("SigBlk:\t0000000000000000"), "\(status)")
        #expect(status.contains("SigIgn:\t0000000000000000"), "\(status)")
    }

    @Test(.needs(.pythonSystemd)) func duplicatesRemovalAndDefaultName() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("b.service", toolUnit(
            "store x 1 store x 2 remove x storetwice d 4 notify FDSTORE=1 store bad:name 5 barrier ready exit 0"))
        _ = try ferryd.start("b.service")
        #expect(ferryd.waitUntil { try ferryd.state("b.service") == "inactive (dead-resources-pinned)" })
        // Both x removed by name, the second copy of d dropped, the invalid name stored as "stored".
        #expect(try ferryd.storeNames("b.service") == ["d", "stored"])
        #expect(ferryd.log.contains("b.service: FDSTORE=1 without any fd, ignored"))
        #expect(ferryd.log.contains("b.service: invalid FDNAME='bad:name'"))
    }

    @Test(.needs(.pythonSystemd)) func storeLimitClosesTheRest() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("c.service", toolUnit("store a 1 store b 2 store c 3 barrier ready exit 0",
                                               extra: "FileDescriptorStoreMax=2"))
        _ = try ferryd.start("c.service")
        #expect(ferryd.waitUntil { try ferryd.state("c.service") == "inactive (dead-resources-pinned)" })
        #expect(try ferryd.storeNames("c.service") == ["a", "b"])
        #expect(ferryd.log.contains("c.service: cannot store more fds than FileDescriptorStoreMax=2"))
    }

    @Test(.needs(.pythonSystemd)) func pollRemovesHungUpFDsUnlessFDPOLL0() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("p.service", toolUnit("storepipe polled storepipe0 kept barrier ready exit 0"))
        _ = try ferryd.start("p.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("p.service") == ["kept"] })
    }

    @Test(.needs(.pythonSystemd)) func preserveModes() throws {
        let ferryd = try FerrydInstance(units: [:])
        for mode in ["no", "restart", "yes", "on-success"] {
            ferryd.writeUnit("m-\(mode).service", toolUnit("store s 1 barrier ready exit 0",
                                                          extra: "FileDescriptorStorePreserve=\(mode)"))
        }
        for mode in ["no", "restart", "yes", "on-success"] {
            _ = try ferryd.start("m-\(mode).service")
            #expect(ferryd.waitUntil { try ferryd.state("m-\(mode).service").hasPrefix("inactive") })
        }
        #expect(try ferryd.storeNames("m-no.service") == [])
        #expect(try ferryd.storeNames("m-restart.service") == [])
        #expect(try ferryd.storeNames("m-yes.service") == ["s"])
        #expect(try ferryd.state("m-yes.service") == "inactive (dead-resources-pinned)")
        #expect(try ferryd.storeNames("m-on-success.service") == ["s"])
        // clean empties a pinned store.
        let cleaned = try ferryd.call("CleanUnit", ["name": .string("m-yes.service")])
        #expect(cleaned.error == nil)
        #expect(try ferryd.state("m-yes.service") == "inactive (dead)")
    }

    @Test(.needs(.pythonSystemd)) func restartKeepsTheStoreOfRestartMode() throws {
        let ferryd = try FerrydInstance(units: [:])
        let report = "\(ferryd.directory.path)/r.json"
        ferryd.writeUnit("r.service", toolUnit("report \(report) store s 1 barrier ready sleep",
                                               extra: "FileDescriptorStorePreserve=restart"))
        _ = try ferryd.start("r.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("r.service") == ["s"] })
        let reply = try ferryd.call("RestartUnit", ["name": .string("r.service")])
        #expect(reply.error == nil)
        #expect(ferryd.waitUntil { (Report.read(report)?.listenFDs ?? 0) >= 1 })
        _ = try ferryd.stop("r.service")
        #expect(try ferryd.storeNames("r.service") == [])
    }

    @Test(.needs(.pythonSystemd)) func onSuccessDropsAFailedUnitsStore() throws {
        // reference-systemd.md §6 step 9: attempt 1 stores and fails; later attempts see the fd;
        // when the start limit is hit the unit is failed for good and its store is released.
        let ferryd = try FerrydInstance(units: [:])
        let report = "\(ferryd.directory.path)/o.json"
        ferryd.writeUnit("o.service", toolUnit("report \(report) store mem 1 barrier ready exit 1", extra: """
            FileDescriptorStoreMax=4
            FileDescriptorStorePreserve=on-success
            Restart=on-failure
            RestartSec=100ms
            StartLimitBurst=2
            StartLimitIntervalSec=60
            """))
        _ = try ferryd.start("o.service")
        #expect(ferryd.waitUntil { try ferryd.state("o.service") == "failed (failed)" })
        #expect((Report.read(report)?.listenFDs ?? 0) >= 1)
        #expect(try ferryd.unit("o.service")["restarts"]?.number ?? 0 >= 1)
        #expect(try ferryd.storeNames("o.service") == [])
        #expect(try ferryd.unit("o.service")["result"]?.string == "start-limit-hit")
    }
}
