import FerryControl
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Supervision: stop and kill, NotifyAccess, reload and re-exec, templates, accounts, the CLI.
@Suite struct FerrydLifecycleTests {
    @Test(.needs(.pythonSystemd)) func stopEscalatesToSIGKILL() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("stubborn.service", toolUnit("ignoreterm ready sleep", extra: "TimeoutStopSec=300ms"))
        #expect(try ferryd.start("stubborn.service") == "active (running)")
        // As systemd: a unit that had to be killed ends failed, with result "timeout".
        #expect(try ferryd.stop("stubborn.service") == "failed (failed)")
        #expect(try ferryd.unit("stubborn.service")["result"]?.string == "timeout")
        #expect(ferryd.log.contains("stubborn.service: did not stop within TimeoutStopSec"))
    }

    @Test(.needs(.pythonSystemd)) func notifyAccessDecidesWhoMaySend() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("main.service", toolUnit("child STATUS=from-child ready sleep", extra: "NotifyAccess=main"))
        ferryd.writeUnit("all.service", toolUnit("child STATUS=from-child ready sleep", extra: "NotifyAccess=all"))
        _ = try ferryd.start("main.service")
        _ = try ferryd.start("all.service")
        #expect(try ferryd.unit("all.service")["status"]?.string == "from-child")
        #expect(try ferryd.unit("main.service")["status"] == nil || ferryd.unit("main.service")["status"] == .null)
        #expect(ferryd.log.contains("main.service: notify message from pid"))
        #expect(ferryd.log.contains("refused by NotifyAccess=main"))
    }

    @Test(.needs(.pythonSystemd)) func reloadAndReexecKeepServicesStoresAndSockets() throws {
        let ferryd = try FerrydInstance(units: [:])
        let report = "\(ferryd.directory.path)/rx.json"
        ferryd.writeUnit("keeper.service", toolUnit("store before 1 barrier ready sleep"))
        _ = try ferryd.start("keeper.service")
        let pid = try ferryd.unit("keeper.service")["mainPID"]?.number
        #expect(try ferryd.call("Reload").error == nil)
        #expect(try ferryd.call("Reexecute").error == nil)
        #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
        #expect(try ferryd.unit("keeper.service")["mainPID"]?.number == pid)
        #expect(try ferryd.state("keeper.service") == "active (running)")
        #expect(try ferryd.storeNames("keeper.service") == ["before"])
        // The notify socket survived: a service started after the re-exec can still store.
        ferryd.writeUnit("late.service", toolUnit("store after 2 barrier ready exit 0"))
        _ = try ferryd.start("late.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("late.service") == ["after"] })
        // The running service's exit is still seen by the new ferryd.
        _ = try ferryd.stop("keeper.service")
        #expect(try ferryd.state("keeper.service") == "inactive (dead-resources-pinned)")
        ferryd.writeUnit("keeper.service", toolUnit("report \(report) ready exit 0"))
        #expect(try ferryd.call("Reexecute").error == nil)
        #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
        _ = try ferryd.start("keeper.service")
        #expect(ferryd.waitUntil { Report.read(report)?.fds.map(\.data) == ["1"] })
        #expect(ferryd.isAlive)
    }

    @Test(.needs(.pythonSystemd)) func templatesSpecifiersEnvironmentAndAccounts() throws {
        let ferryd = try FerrydInstance(units: [:])
        let report = "\(ferryd.directory.path)/shared/t-%i.json"
        ferryd.directory.write("env", "# comment\nFROMFILE=\"from file\"\n")
        // User=nobody must be able to read the program wherever the checkout lives.
        ferryd.directory.write("shared/tool.py", readText(tool), mode: 0o755)
        let sharedTool = "\(ferryd.directory.path)/shared/tool.py"
        ferryd.writeUnit("worker@.service", """
            [Unit]
            Description=worker %i of %p
            [Service]
            Type=notify
            Environment="GREETING=hello world" INSTANCE=%i
            EnvironmentFile=\(ferryd.directory.path)/env
            EnvironmentFile=-/nonexistent/optional
            WorkingDirectory=/tmp
            User=nobody
            ExecStart=\(systemPython) \(sharedTool) \\
                report \(report) ready exit 0
            """)
        _ = try ferryd.start("worker@blue.service")
        let path = "\(ferryd.directory.path)/shared/t-blue.json"
        #expect(ferryd.waitUntil { Report.read(path) != nil })
        let got = try #require(Report.read(path))
        #expect(got.env["GREETING"] == "hello world")
        #expect(got.env["INSTANCE"] == "blue")
        #expect(got.env["FROMFILE"] == "from file")
        #expect(got.cwd == "/tmp")
        #expect(got.uid == 65534)
        #expect(try ferryd.unit("worker@blue.service")["description"]?.string == "worker blue of worker")
    }

    @Test func syntaxErrorsWarnAndTheUnitStillLoads() throws {
        let ferryd = try FerrydInstance(units: ["odd.service": """
            [Unit
            Description=odd
            just words
            [Service]
            ExecStart=/bin/true
            Restart=sometimes
            NoSuchKey=1
            Environment="unterminated
            """])
        let reply = try ferryd.call("GetUnit", ["name": .string("odd.service")])
        #expect(reply.error == nil)
        for expected in ["odd.service: line 1: malformed section header", "odd.service: line 3: not an assignment",
                         "odd.service: line 6: Restart=sometimes is not supported",
                         "odd.service: line 7: unknown setting NoSuchKey=", "odd.service: line 8: Environment="] {
            #expect(ferryd.log.contains(expected), "missing warning: \(expected)")
        }
        #expect(try ferryd.start("odd.service") == "active (running)")
        #expect(ferryd.waitUntil { try ferryd.state("odd.service") == "inactive (dead)" })
    }

    @Test(.needs(.pythonSystemd), .needs(.utilLinux)) func ferryctlTalksToFerryd() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("cli.service", toolUnit("store one 1 barrier ready sleep"))
        let environment = ["FERRY_CONTROL=\(ferryd.control)"]
        let start = try Child.spawn([ferryctlPath, "start", "cli.service"], environment: environment)
        #expect(start.wait() == 0)
        #expect(start.output.contains("cli.service: active (running)"))
        let fdstore = try Child.spawn([ferryctlPath, "fdstore", "cli.service"], environment: environment)
        #expect(fdstore.wait() == 0)
        let table = fdstore.output
        #expect(table.contains("FDNAME"))
        #expect(table.contains("one") && table.contains("memfd") && table.contains("/memfd:one"))
        let json = try Child.spawn([ferryctlPath, "list-units", "--json"], environment: environment)
        #expect(json.wait() == 0)
        #expect(json.output.contains("\"name\":\"cli.service\""))
        // Reads are open to all; changes need root.
        let asNobody = try Child.spawn(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                        ferryctlPath, "stop", "cli.service"], environment: environment)
        #expect(asNobody.wait() == 4)
        #expect(asNobody.output.contains("stop needs root"), "\(asNobody.output)")
        #expect(!asNobody.output.contains("PermissionDenied"))
        let readAsNobody = try Child.spawn(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                            ferryctlPath, "status", "cli.service"], environment: environment)
        #expect(readAsNobody.wait() == 0)
        let missing = try Child.spawn([ferryctlPath, "status", "no-such.service"], environment: environment)
        // As systemctl status: 4 for no such unit, in words.
        #expect(missing.wait() == 4)
        #expect(missing.output.contains("unit no-such.service not found"), "\(missing.output)")
        #expect(!missing.output.contains("NoSuchUnit"))
    }

    @Test func ferryctlSaysWhenFerrydIsNotRunning() throws {
        let child = try Child.spawn([ferryctlPath, "list-units"], environment: ["FERRY_CONTROL=/tmp/ferry-nothing-here.sock"])
        // As systemctl when it cannot reach its manager: 1, with what to do.
        #expect(child.wait() == 1)
        #expect(child.output.contains("ferryd is not running"))
        #expect(child.output.contains("--control PATH or $FERRY_CONTROL"))
    }

    @Test func journalStreamGetsPriorityPrefixes() throws {
        // When stderr is the journal stream named by JOURNAL_STREAM, lines start with <N>.
        let folder = TemporaryDirectory("ferry-journal")
        folder.write("units/x.service", "[Service]\nExecStart=/bin/true\nBogus=1\n")
        let logPath = "\(folder.path)/journal.log"
        folder.write("journal.log", "")
        var status = stat()
        stat(logPath, &status)
        let child = try Child.spawn([ferrydPath, "--units", "\(folder.path)/units", "--runtime-dir", "\(folder.path)/run"],
                                    environment: ["JOURNAL_STREAM=\(status.st_dev):\(status.st_ino)"], outputPath: logPath)
        defer { child.kill(SIGTERM); _ = child.wait() }
        let deadline = MonotonicClock.now() + .seconds(10)
        while !readText(logPath).contains("started") && MonotonicClock.now() < deadline { usleep(20_000) }
        let text = readText(logPath)
        #expect(text.contains("<4>x.service: line 3: unknown setting Bogus="), "\(text)")
        #expect(text.contains("<6>ferryd"))
    }

    @Test func varlinkIntrospection() throws {
        let ferryd = try FerrydInstance(units: [:])
        let info = try ferryd.call("org.varlink.service.GetInfo")
        #expect(info.parameters["interfaces"]?.array?.contains(.string("io.ferry.Manager")) == true)
        let description = try ferryd.call("org.varlink.service.GetInterfaceDescription",
                                          ["interface": .string("io.ferry.Manager")])
        #expect(description.parameters["description"]?.string?.contains("method ListFDStore") == true)
        #expect(try ferryd.call("NoSuchMethod").error == "org.varlink.service.MethodNotFound")
    }
}

/// One ferryd per runtime directory, and upgrades in place.
@Suite struct FerrydInstanceTests {
    @Test func aSecondFerrydOnTheSameDirectoryRefusesAndTouchesNothing() throws {
        let ferryd = try FerrydInstance(units: [:])
        let second = try Child.spawn([ferrydPath, "--units", ferryd.units, "--runtime-dir", "\(ferryd.directory.path)/run"])
        #expect(second.wait() == 1)
        #expect(second.output.contains("another ferryd (pid \(ferryd.child.pid)) serves \(ferryd.directory.path)/run"), "\(second.output)")
        #expect(access(ferryd.control, F_OK) == 0 && access(ferryd.notify, F_OK) == 0)
        #expect(try ferryd.call("GetManager").error == nil)
    }

    @Test(.needs(.pythonSystemd)) func daemonReexecRunsTheBinaryInstalledAtItsPath() throws {
        let folder = TemporaryDirectory("ferryd-upgrade")
        let installed = "\(folder.path)/ferryd"
        #expect(try Child.spawn(["/bin/cp", ferrydPath, installed]).wait() == 0)
        let ferryd = try FerrydInstance(units: [:], executable: installed)
        ferryd.writeUnit("keep.service", toolUnit("store data kept barrier ready sleep"))
        _ = try ferryd.start("keep.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("keep.service") == ["data"] })
        // "Install" a new ferryd: a new file at the same path, as a package manager does.
        let marker = "\(folder.path)/new-binary-ran"
        unlink(installed)
        folder.write("ferryd", "#!/bin/sh\necho yes > \(marker)\nexec \(ferrydPath) \"$@\"\n", mode: 0o755)
        #expect(try ferryd.call("Reexecute").error == nil)
        #expect(ferryd.waitUntil { access(marker, F_OK) == 0 }, "the old, deleted binary ran again")
        #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
        #expect(ferryd.waitUntil { ferryd.log.contains("re-executed 0.1.0 → 0.1.0") }, "\(ferryd.log)")
        #expect(try ferryd.storeNames("keep.service") == ["data"])
        #expect(try ferryd.state("keep.service") == "active (running)")
    }
}
