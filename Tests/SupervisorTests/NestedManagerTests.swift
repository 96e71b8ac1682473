import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ferryd under ferryd (reference-systemd.md §3.9): the inner one pushes its stores to the outer
/// one's store for it, and takes them back when it starts again, after a crash or a live update.
@Suite(.needs(.pythonSystemd)) struct NestedManagerTests {
    /// An outer ferryd whose unit `inner.service` is another ferryd with one unit, `keep.service`.
    final class Nest {
        let outer: FerrydInstance
        let innerRoot: TemporaryDirectory
        var innerControl: String { "\(innerRoot.path)/run/control" }
        var report: String { "\(innerRoot.path)/report.json" }

        init(emulator: String? = nil, askOuterForKexec: Bool = false, innerArguments: String = "",
             innerEnvironment: [String] = []) throws {
            outer = try FerrydInstance(units: [:], extraArguments: emulator.map { ["--liveupdate-emulator", $0] } ?? [])
            innerRoot = TemporaryDirectory("ferryd-inner")
            chmod(innerRoot.path, 0o755)
            innerRoot.write("units/keep.service", toolUnit("report \(innerRoot.path)/report.json store data precious store data second barrier ready sleep"))
            outer.writeUnit("inner.service", """
                [Service]
                Type=notify
                ExecStart=\(ferrydPath) --units \(innerRoot.path)/units --runtime-dir \(innerRoot.path)/run --state-dir \(innerRoot.path)/state --log-level debug \(askOuterForKexec ? "--kexec-command \"\(ferryctlPath) kexec --rehearse --control \(outer.control)\"" : "") \(innerArguments)
                \(innerEnvironment.map { "Environment=\($0)" }.joined(separator: "\n"))
                FileDescriptorStoreMax=100
                FileDescriptorStorePreserve=yes
                Restart=always
                RestartSec=100ms
                """)
        }

        /// Without cgroup v2 (this test host) a unit of the inner ferryd, in its own session,
        /// outlives an inner ferryd that is killed; end every process that runs from our folder.
        deinit {
            guard let folder = opendir("/proc") else { return }
            defer { closedir(folder) }
            while let entry = readdir(folder) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard let pid = pid_t(name), pid != getpid() else { continue }
                if readText("/proc/\(pid)/cmdline").contains(innerRoot.path) { kill(pid, SIGKILL) }
            }
        }

        func inner(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> Varlink.Reply {
            var client = try VarlinkClient(path: innerControl)
            return try client.call(Varlink.Call(method: "io.ferry.Manager.\(method)", parameters: parameters))
        }

        func innerStore(_ unit: String) throws -> [String] {
            try inner("ListFDStore", ["name": .string(unit)]).parameters["entries"]?.array?.compactMap { $0["name"]?.string } ?? []
        }

        /// Starts the inner ferryd and its unit, and waits until the outer holds both fds and the mapping.
        func startAndStore(host: String = "nested") throws {
            #expect(try outer.start("inner.service") == "active (running)", "\(outer.log)")
            #expect(try inner("StartUnit", ["name": .string("keep.service")]).error == nil)
            #expect(outer.waitUntil { try outer.storeNames("inner.service").sorted() == ["sub-fdstore-1", "sub-fdstore-2", "systemd-fdstore-mapping"] },
                    "outer holds \((try? outer.storeNames("inner.service")) ?? [])")
            let description = try inner("GetManager").parameters["host"]?.string
            #expect(description?.contains(host) == true, "\(description ?? "no host")")
        }
    }

    @Test func aCrashOfTheInnerFerrydLosesNothing() throws {
        let nest = try Nest()
        try nest.startAndStore()
        let firstPID = try nest.outer.unit("inner.service")["mainPID"]?.number
        kill(pid_t(firstPID ?? 0), SIGKILL)
        #expect(nest.outer.waitUntil {
            let unit = try nest.outer.unit("inner.service")
            return unit["mainPID"]?.number != firstPID && unit["active"]?.string == "active"
        }, "\(nest.outer.log)")
        #expect(nest.outer.waitUntil { try nest.innerStore("keep.service") == ["data", "data"] }, "\(nest.outer.log)")
        // Nothing was pushed twice: the same two entries and the mapping are all the outer holds.
        #expect(try nest.outer.storeNames("inner.service").sorted() == ["sub-fdstore-1", "sub-fdstore-2", "systemd-fdstore-mapping"])
        // The unit starts again with both fds and their bytes.
        unlink(nest.report)
        #expect(try nest.inner("StartUnit", ["name": .string("keep.service")]).error == nil)
        #expect(nest.outer.waitUntil { Report.read(nest.report)?.fds.map(\.data).sorted() == ["precious", "second"] })
    }

    @Test func removalsReachTheOuterStore() throws {
        let nest = try Nest()
        try nest.startAndStore()
        #expect(try nest.inner("StopUnit", ["name": .string("keep.service")]).error == nil)
        #expect(try nest.inner("CleanUnit", ["name": .string("keep.service")]).error == nil)
        #expect(nest.outer.waitUntil { try nest.outer.storeNames("inner.service").isEmpty }, "outer holds \((try? nest.outer.storeNames("inner.service")) ?? [])")
    }

    @Test func theOuterFerrydCarriesTheInnerStoresAcrossARehearsedKexec() throws {
        try withEmulator { emulator in
            let nest = try Nest(emulator: emulator.socketPath)
            try nest.startAndStore()
            // The inner ferryd leaves live updates to the manager above.
            let refused = try nest.inner("Kexec", ["rehearse": .bool(true)])
            #expect(refused.error == "io.ferry.Manager.LiveUpdateFailed")
            #expect(refused.parameters["report"]?["failure"]?.string?.contains("nested") == true)
            let reply = try nest.outer.call("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == nil, "\(reply.parameters)")
            #expect(nest.outer.waitUntil(seconds: 30) {
                try nest.outer.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true
            })
            // The outer ferryd starts inner.service again, which takes its unit's store back.
            #expect(nest.outer.waitUntil { try nest.innerStore("keep.service") == ["data", "data"] }, "\(nest.outer.log)")
            unlink(nest.report)
            #expect(try nest.inner("StartUnit", ["name": .string("keep.service")]).error == nil)
            #expect(nest.outer.waitUntil { Report.read(nest.report)?.fds.map(\.data).sorted() == ["precious", "second"] })
        }
    }
}

extension NestedManagerTests {
    /// The systemd ≥ 261 hand-over, with an outer ferryd standing in for systemd: the inner
    /// ferryd stops its units, hands its state up and asks the manager above for the kexec; the
    /// manager above carries everything; the inner ferryd starts its units again with their fds.
    @Test func theInnerFerrydHandsTheUpdateToTheManagerAbove() throws {
        try withEmulator { emulator in
            let nest = try Nest(emulator: emulator.socketPath, askOuterForKexec: true)
            try nest.startAndStore()
            let firstPID = try nest.outer.unit("inner.service")["mainPID"]?.number
            unlink(nest.report)
            // The inner ferryd is stopped by the update it asked for: its own caller hears nothing.
            _ = try? nest.inner("Kexec")
            #expect(nest.outer.waitUntil(seconds: 30) {
                try nest.outer.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true
            }, "\(nest.outer.log)")
            #expect(try nest.outer.unit("inner.service")["mainPID"]?.number != firstPID)
            // keep.service ran before, so the inner ferryd starts it again, with both fds.
            #expect(nest.outer.waitUntil { Report.read(nest.report)?.fds.map(\.data).sorted() == ["precious", "second"] },
                    "\(nest.outer.log)")
            let restore = try nest.inner("GetLiveUpdate").parameters
            #expect(restore["kexecCount"]?.number == 0, "a rehearsal keeps the boot: no kexec is counted")
            #expect(restore["restore"]?["found"]?.bool == true)
            #expect(nest.outer.waitUntil { !(try nest.outer.storeNames("inner.service").contains("ferry-update-state")) })
            // The update's record says what the manager above carried: both fds, nothing lost.
            var last: JSONValue?
            #expect(nest.outer.waitUntil {
                var client = try VarlinkClient(path: nest.innerControl)
                last = try client.call(Varlink.Call(method: "io.ferry.Observe.GetLastUpdate", parameters: [:])).parameters["update"]
                return last?["carriedCount"]?.number != nil
            }, "\(String(describing: last))")
            #expect(last?["carriedCount"]?.number == 2, "\(String(describing: last))")
            #expect(last?["lostCount"]?.number == 0, "\(String(describing: last))")
            // Written when the update settled (its one unit ready), with the blackout already known.
            let onDisk = JSONValue.parse(Array(readText("\(nest.innerRoot.path)/state/history.json").utf8))
            let saved = onDisk?["updates"]?.array?.first
            #expect(saved?["blackoutUs"]?.number != nil, "\(String(describing: saved))")
        }
    }
}

extension NestedManagerTests {
    /// `systemctl kexec` run by someone else reaches ferryd through ferry-kexec.service
    /// (`ferryd --kexec-under-way`, as `ferryctl kexec --handed-over`): it stops its units and hands
    /// its state up, asking nobody.
    @Test func aKexecAlreadyUnderWayIsPreparedNotAskedFor() throws {
        let nest = try Nest()
        try nest.startAndStore()
        // What ferry-kexec.service runs.
        func run(_ arguments: [String]) throws -> (status: CInt, output: String) {
            let child = try Child.spawn([ferrydPath] + arguments)
            defer { unlink(child.outputPath) }
            let status = child.wait()
            return (status, child.output)
        }
        let client = try run(["--kexec-under-way", "--control", nest.innerControl])
        #expect(client.status == 0, "\(client.output)")
        #expect(client.output.contains("ferryd handed its units' stores over for the kexec (2 entries)"), "\(client.output)")
        // Asked again (ferryctl kexec asked for this kexec itself): already under way.
        let again = try run(["--kexec-under-way", "--control", nest.innerControl])
        #expect(again.status == 0 && again.output.contains("already handing"), "\(again.output)")
        let refused = try run(["--kexec-under-way", "--control", "\(nest.innerRoot.path)/nothing"])
        #expect(refused.status == 1 && refused.output.contains("cannot reach ferryd"), "\(refused.output)")
        #expect(try nest.inner("GetUnit", ["name": .string("keep.service")]).parameters["unit"]?["active"]?.string == "inactive")
        #expect(nest.outer.waitUntil { try nest.outer.storeNames("inner.service").contains("ferry-update-state") })
        #expect(try nest.inner("GetManager").parameters["liveUpdatePhase"]?.string == "hand-over")
    }

    /// `ferryd --kexec-watch` told of the inner ferryd of `nest`, once it says it is armed.
    private func armedWatch(_ nest: Nest) throws -> (watch: Child, armed: String) {
        let armed = "\(nest.innerRoot.path)/kexec-watch.armed"
        let watch = try Child.spawn([ferrydPath, "--kexec-watch", "--control", nest.innerControl, "--armed", armed])
        #expect(nest.outer.waitUntil { access(armed, F_OK) == 0 }, "never armed: \(watch.output)")
        return (watch, armed)
    }

    /// ferry-kexec-watch.service's process (`ferryd --kexec-watch`), started long before: the
    /// kexec transaction's SIGTERM makes it tell ferryd, as ferry-kexec.service would, and it
    /// exits once ferryd has handed its stores over. While it waits, the armed file exists (the
    /// fallback unit's condition), and it stays after that SIGTERM.
    @Test func theKexecWatchTellsFerrydOnItsStop() throws {
        let nest = try Nest()
        try nest.startAndStore()
        let (watch, armed) = try armedWatch(nest)
        defer { unlink(watch.outputPath) }
        // Armed, nothing asked yet: the units still run.
        #expect(try nest.inner("GetUnit", ["name": .string("keep.service")]).parameters["unit"]?["active"]?.string == "active")
        watch.kill(SIGTERM)
        #expect(watch.wait() == 0, "\(watch.output)")
        #expect(watch.output.contains("ferryd handed its units' stores over for the kexec (2 entries)"), "\(watch.output)")
        #expect(access(armed, F_OK) == 0)
        #expect(try nest.inner("GetUnit", ["name": .string("keep.service")]).parameters["unit"]?["active"]?.string == "inactive")
        #expect(try nest.inner("GetManager").parameters["liveUpdatePhase"]?.string == "hand-over")
    }

    /// SIGINT is no kexec (nor is systemd-shutdown's final SIGTERM, told apart by PID 1's name,
    /// which a test cannot change): the watch leaves ferryd alone, removes its armed file and exits.
    @Test func theKexecWatchLeavesFerrydAloneWhenNoKexecStopsIt() throws {
        let nest = try Nest()
        try nest.startAndStore()
        let (watch, armed) = try armedWatch(nest)
        defer { unlink(watch.outputPath) }
        watch.kill(SIGINT)
        #expect(watch.wait() == 0, "\(watch.output)")
        #expect(access(armed, F_OK) != 0)
        #expect(try nest.inner("GetUnit", ["name": .string("keep.service")]).parameters["unit"]?["active"]?.string == "active")
        let refused = try Child.spawn([ferrydPath, "--kexec-watch", "--armed"])
        defer { unlink(refused.outputPath) }
        #expect(refused.wait() == 2 && refused.output.contains("usage"), "\(refused.output)")
        // An armed file it cannot write: not armed, and it says where and why.
        let unarmed = try Child.spawn([ferrydPath, "--kexec-watch", "--armed", "\(nest.innerRoot.path)/missing/armed"])
        defer { unlink(unarmed.outputPath) }
        #expect(unarmed.wait() == 1, "\(unarmed.output)")
        #expect(unarmed.output.contains("not armed") && unarmed.output.contains("missing") && unarmed.output.contains("ENOENT"),
                "\(unarmed.output)")
    }
}

/// What the manager above hands back is read tolerantly: a bad unit, a repeated index or an fd
/// missing from the mapping is named in the log, and every other entry still comes back.
@Suite struct UpstreamTakeBackTests {
    /// Starts ferryd as a manager above would: LISTEN_FDS with these (name, contents) memfds,
    /// `$NOTIFY_SOCKET` on a socket of ours and `$FDSTORE`.
    static func startFerryd(handing fds: [(String, String)], in directory: TemporaryDirectory,
                            upstream: borrowing OwnedFD) throws -> (pid: pid_t, log: String) {
        var memfds = OwnedFDs()
        for (name, contents) in fds { memfds.append(try Memfd.create(name: name, contents: Array(contents.utf8))) }
        directory.write("units/.keep", "")
        let log = "\(directory.path)/ferryd.log"
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(logFD) }
        let pid = try Spawner.spawn(SpawnRequest(
            path: ferrydPath,
            arguments: [ferrydPath, "--units", "\(directory.path)/units", "--runtime-dir", "\(directory.path)/run", "--log-level", "debug",
                        "--state-dir", "\(directory.path)/state"],
            environment: ["PATH=/usr/bin:/bin", "NOTIFY_SOCKET=\(directory.path)/upstream", "FDSTORE=10",
                          "LISTEN_FDS=\(fds.count)", "LISTEN_FDNAMES=" + fds.map(\.0).joined(separator: ":")],
            listenDescriptors: memfds.rawValues, setListenPID: true, standardIO: [-1, logFD, logFD]))
        return (pid, log)
    }

    @Test func badMappingEntriesAreNamedAndTheRestComesBack() throws {
        let directory = TemporaryDirectory("ferryd-upstream")
        let upstream = try UnixSocket.listen(path: "\(directory.path)/upstream", kind: .datagram)
        let mapping = #"{"a.service":[{"name":"x","index":1},{"name":"y","index":2}],"bad name":[{"name":"z","index":5}],"b.service":[{"name":"w","index":2},{"name":"v","index":0}]}"#
        let (pid, log) = try Self.startFerryd(handing: [
            ("sub-fdstore-1", "one"), ("systemd-fdstore-mapping", mapping), ("sub-fdstore-2", "two"), ("sub-fdstore-3", "three"),
        ], in: directory, upstream: upstream)
        defer {
            kill(pid, SIGTERM)
            var status: CInt = 0
            waitpid(pid, &status, 0)
        }
        let control = "\(directory.path)/run/control"
        func store(_ unit: String) -> [String] {
            guard var client = try? VarlinkClient(path: control),
                let reply = try? client.call(Varlink.Call(method: "io.ferry.Manager.ListFDStore", parameters: ["name": .string(unit)]))
            else { return [] }
            return reply.parameters["entries"]?.array?.compactMap { $0["name"]?.string } ?? []
        }
        var placed = false
        for _ in 0..<500 where !placed {
            placed = store("a.service").sorted() == ["x", "y"]
            if !placed { usleep(20_000) }
        }
        #expect(placed, "\(readText(log))")
        #expect(store("b.service").isEmpty)
        let text = readText(log)
        #expect(text.contains("index 2 listed twice"))
        #expect(text.contains("'bad name': invalid unit name"))
        #expect(text.contains("needs a 'name' and a non-zero 'index'"))
        #expect(text.contains("sub-fdstore-3: not in systemd-fdstore-mapping"))
        // Upstream heard READY and a new mapping, and was never told to drop the unplaced fd.
        var heard: [String] = []
        while let message = try? UnixSocket.receive(upstream.borrowed, maximumBytes: 4096, maximumDescriptors: 4, nonBlocking: true) {
            heard.append(String(decoding: message.bytes, as: UTF8.self))
        }
        #expect(heard.contains { $0.hasPrefix("READY=1") })
        #expect(heard.contains("FDSTORE=1\nFDNAME=systemd-fdstore-mapping\nFDPOLL=0"))
        #expect(!heard.contains { $0.contains("FDNAME=sub-fdstore-3") })
    }

    @Test func aTruncatedMappingPlacesNothingAndDropsNothing() throws {
        let directory = TemporaryDirectory("ferryd-upstream")
        let upstream = try UnixSocket.listen(path: "\(directory.path)/upstream", kind: .datagram)
        let (pid, log) = try Self.startFerryd(handing: [
            ("sub-fdstore-1", "one"), ("systemd-fdstore-mapping", #"{"a.service":[{"name":"x","ind"#),
        ], in: directory, upstream: upstream)
        defer {
            kill(pid, SIGTERM)
            var status: CInt = 0
            waitpid(pid, &status, 0)
        }
        var logged = false
        for _ in 0..<500 where !logged {
            logged = readText(log).contains("systemd-fdstore-mapping is not valid JSON (truncated?)")
            if !logged { usleep(20_000) }
        }
        #expect(logged, "\(readText(log))")
        var heard: [String] = []
        while let message = try? UnixSocket.receive(upstream.borrowed, maximumBytes: 4096, maximumDescriptors: 4, nonBlocking: true) {
            heard.append(String(decoding: message.bytes, as: UTF8.self))
        }
        #expect(!heard.contains { $0.contains("FDSTOREREMOVE") })
    }
}

extension NestedManagerTests {
    /// The inner ferryd's broker hands its sessions to the outer one for the kexec the outer one
    /// performs, and takes them back afterwards for their owner.
    @Test func brokeredSessionsRideAKexecOfTheManagerAbove() throws {
        try withEmulator { emulator in
            let nest = try Nest(emulator: emulator.socketPath, askOuterForKexec: true)
            try nest.startAndStore()
            let broker = "\(nest.innerRoot.path)/run/broker"
            let saved = try BrokerProcessTests.ferryctl(as: 0, ["session", "memfd", "save", "vm", "--text", "nested-state", "--broker", broker])
            #expect(saved.status == 0, "\(saved.output)")
            let firstPID = try nest.outer.unit("inner.service")["mainPID"]?.number
            _ = try? nest.inner("Kexec")
            #expect(nest.outer.waitUntil(seconds: 30) {
                try nest.outer.call("GetLiveUpdate").parameters["restore"]?["found"]?.bool == true
            }, "\(nest.outer.log)")
            #expect(nest.outer.waitUntil(seconds: 30) {
                try nest.outer.unit("inner.service")["mainPID"]?.number != firstPID
                    && nest.inner("GetManager").parameters["broker"]?["waiting"]?.number == 1
            }, "\(nest.outer.log)")
            let back = try BrokerProcessTests.ferryctl(as: 0, ["session", "memfd", "verify", "vm", "--text", "nested-state", "--broker", broker])
            #expect(back.status == 0, "\(back.output)\n\(nest.outer.log)")
            // Taken back: the outer store no longer holds the session for the inner ferryd.
            #expect(nest.outer.waitUntil { !(try nest.outer.storeNames("inner.service")).contains { $0.hasPrefix("ferry-broker-") } })
        }
    }
}

extension NestedManagerTests {
    /// A manager above that keeps ferryd's store across a crash but does not carry a kexec (systemd
    /// older than 261; here an outer ferryd and `--manager-above-kexec no`): the inner ferryd
    /// preserves in LUO itself, and dies at a step of the restore after a rehearsal. The outer
    /// one starts it again, with the retrieved sessions it held and the entries stored so far; the
    /// restore carries on, and the unit gets both fds back, each once.
    @Test(arguments: ["retrieve-session", "retrieve-fd-1", "finish", "finished"])
    func aCrashDuringARestoreUnderAManagerThatOnlyKeepsStores(step: String) throws {
        try withEmulator { emulator in
            let marker = TemporaryDirectory("ferryd-die-once")
            let nest = try Nest(emulator: emulator.socketPath, innerArguments: "--manager-above-kexec no",
                                innerEnvironment: ["FERRYD_TEST_DIE_AT=\(step)", "FERRYD_TEST_DIE_ONCE=\(marker.path)/died"])
            try nest.startAndStore(host: "ferryd preserves them in LUO for a kexec")
            let firstPID = try nest.outer.unit("inner.service")["mainPID"]?.number
            unlink(nest.report)
            let reply = try nest.inner("Kexec", ["rehearse": .bool(true)])
            #expect(reply.error == nil, "\(reply.parameters)")
            // The rehearsal's fresh ferryd died at the step; the outer ferryd started another.
            #expect(nest.outer.waitUntil(seconds: 30) { try nest.outer.unit("inner.service")["mainPID"]?.number != firstPID },
                    "\(nest.outer.log)")
            #expect(access("\(marker.path)/died", F_OK) == 0, "ferryd never reached step \(step)")
            if step == "finished" {
                // FINISH ran and the copies above went: every fd came back from above, but which
                // units ran died with that ferryd (a gap of microseconds, documented): started here.
                #expect(nest.outer.waitUntil { try nest.innerStore("keep.service") == ["data", "data"] }, "\(nest.outer.log)")
                #expect(try nest.inner("StartUnit", ["name": .string("keep.service")]).error == nil)
            }
            #expect(nest.outer.waitUntil(seconds: 30) { Report.read(nest.report)?.fds.map(\.data).sorted() == ["precious", "second"] },
                    "\(nest.outer.log)")
            // (The unit got exactly its two fds: a file retrieved twice would have been a third.)
            // The held sessions are gone above once FINISHed.
            #expect(nest.outer.waitUntil { try !nest.outer.storeNames("inner.service").contains { $0.hasPrefix("ferry-incoming-") } },
                    "outer holds \((try? nest.outer.storeNames("inner.service")) ?? [])")
            guard step != "finished" else { return }
            // Nothing was lost, by the restore's own account.
            let restore = try nest.inner("GetLiveUpdate").parameters["restore"]
            #expect(restore?["found"]?.bool == true, "\(String(describing: restore))")
            #expect((restore?["losses"]?.array ?? []).isEmpty, "\(String(describing: restore))")
            #expect((restore?["problems"]?.array ?? []).isEmpty, "\(String(describing: restore))")
            #expect(restore?["restored"]?.array?.count == 2, "\(String(describing: restore))")
        }
    }
}
