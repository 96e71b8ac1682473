import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import LiveUpdate
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ferryctl as an operator uses it: the real ferryctl against a real ferryd, speaking like systemctl.
@Suite struct FerryctlTests {
    static let units = [
        "sleeper.service": "[Unit]\nDescription=sleeps\n[Service]\nExecStart=/bin/sleep 1000\n",
        "once.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
        "kept.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
        "absent.service": "[Service]\nExecStart=/nonexistent/ferry-test-program --flag\n",
        "unlisted.service": "[Service]\nExecStart=ferry-test-program-found-nowhere\n",
    ]

    /// Runs ferryctl against `ferryd`; returns its exit status and output (stdout and stderr).
    static func ferryctl(_ arguments: [String], _ ferryd: FerrydInstance) throws -> (status: CInt, output: String) {
        try run([ferryctlPath] + arguments, environment: ["FERRY_CONTROL=\(ferryd.control)"])
    }

    static func run(_ arguments: [String], environment: [String] = []) throws -> (status: CInt, output: String) {
        let child = try Child.spawn(arguments, environment: environment)
        let status = child.wait()
        return (status, child.output)
    }

    @Test func bareNamesMeanServiceAndStatusExitsAsSystemctl() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        let start = try Self.ferryctl(["start", "sleeper"], ferryd)
        #expect(start.status == 0)
        #expect(start.output == "sleeper.service: active (running)\n")
        let running = try Self.ferryctl(["status", "sleeper"], ferryd)
        #expect(running.status == 0)
        #expect(running.output.hasPrefix("● sleeper.service - sleeps\n"), "\(running.output)")
        #expect(running.output.contains("Active: active (running)"))
        #expect(running.output.contains("Loaded: loaded (\(ferryd.units)/sleeper.service; disabled)"))
        #expect(try Self.ferryctl(["stop", "sleeper"], ferryd).status == 0)
        let stopped = try Self.ferryctl(["status", "sleeper.service"], ferryd)
        #expect(stopped.status == 3, "inactive is 3, as systemctl status")
        #expect(stopped.output.hasPrefix("○ sleeper.service"))
        let missing = try Self.ferryctl(["status", "nope"], ferryd)
        #expect(missing.status == 4, "no such unit is 4 for status")
        #expect(missing.output.contains("unit nope.service not found"))
        #expect(missing.output.contains("ferryctl list-units"), "and what to do next")
        #expect(!missing.output.contains("NoSuchUnit") && !missing.output.contains("name="))
        let startMissing = try Self.ferryctl(["start", "nope"], ferryd)
        #expect(startMissing.status == 5, "no such unit is 5 for the other commands")
    }

    @Test func restartReturnsWhenTheUnitIsBackWithItsNewState() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        #expect(try Self.ferryctl(["start", "sleeper"], ferryd).status == 0)
        let before = try ferryd.unit("sleeper.service")["mainPID"]?.number
        let restart = try Self.ferryctl(["restart", "sleeper"], ferryd)
        #expect(restart.status == 0)
        #expect(restart.output == "sleeper.service: active (running)\n", "not the stopped state in between")
        // The reply itself carries the new process.
        let reply = try ferryd.call("RestartUnit", ["name": .string("sleeper.service")])
        let unit = reply.parameters["unit"]?.object ?? [:]
        #expect(unit["active"]?.string == "active" && unit["sub"]?.string == "running", "\(reply)")
        let after = unit["mainPID"]?.number
        #expect(after != nil && after != before)
        #expect(try ferryd.unit("sleeper.service")["mainPID"]?.number == after)
    }

    @Test func aFinishedOneshotDoesNotLookRunning() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        let once = try Self.ferryctl(["start", "once"], ferryd)
        #expect(once.status == 0)
        #expect(once.output == "once.service: inactive (dead): its command ran and exited successfully\n")
        let kept = try Self.ferryctl(["start", "kept"], ferryd)
        #expect(kept.status == 0)
        #expect(kept.output.hasPrefix("kept.service: active (exited): its command ran and exited successfully"))
        #expect(!once.output.contains("running") && !kept.output.contains("running"))
    }

    @Test func aMissingProgramIsReportedAsENOENT() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        for (unit, program) in [("absent", "/nonexistent/ferry-test-program"), ("unlisted", "ferry-test-program-found-nowhere")] {
            let start = try Self.ferryctl(["start", unit], ferryd)
            #expect(start.status == 1)
            #expect(start.output.contains("\(unit).service failed to start: its program could not be executed: \(program): No such file or directory (ENOENT)"),
                    "\(start.output)")
            #expect(!start.output.contains("resources"))
            let status = try Self.ferryctl(["status", unit], ferryd)
            #expect(status.status == 3)
            #expect(status.output.hasPrefix("× \(unit).service"))
            #expect(status.output.contains("Active: failed (Result: exec)"), "\(status.output)")
            #expect(status.output.contains("Failure: \(program): No such file or directory (ENOENT)"))
            #expect(try ferryd.unit("\(unit).service")["failure"]?.string?.hasPrefix("\(program): No such file or directory") == true)
        }
        #expect(ferryd.log.contains("unlisted.service: line 2: ExecStart=: program 'ferry-test-program-found-nowhere' is not found"))
    }

    @Test func showPrintsPropertiesAndCatTheUnitFile() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        let show = try Self.ferryctl(["show", "sleeper"], ferryd)
        #expect(show.status == 0)
        let lines = show.output.split(separator: "\n").map(String.init)
        for expected in ["Id=sleeper.service", "Description=sleeps", "LoadState=loaded", "ActiveState=inactive", "SubState=dead",
                         "MainPID=0", "FragmentPath=\(ferryd.units)/sleeper.service", "FileDescriptorStoreMax=0"] {
            #expect(lines.contains(expected), "\(expected) in \(lines)")
        }
        #expect(lines.allSatisfy { $0.contains("=") })
        #expect(try Self.ferryctl(["start", "sleeper"], ferryd).status == 0)
        let picked = try Self.ferryctl(["show", "sleeper", "-p", "ActiveState,SubState", "--value"], ferryd)
        #expect(picked.output == "active\nrunning\n")
        let missing = try Self.ferryctl(["show", "nope"], ferryd)
        #expect(missing.status == 0, "as systemctl show")
        #expect(missing.output.contains("Id=nope.service\n") && missing.output.contains("LoadState=not-found\n"))
        let cat = try Self.ferryctl(["cat", "sleeper"], ferryd)
        #expect(cat.status == 0)
        #expect(cat.output == "# \(ferryd.units)/sleeper.service\n" + Self.units["sleeper.service"]!)
        #expect(try Self.ferryctl(["cat", "nope"], ferryd).status == 5)
    }

    /// A refusal before anything stopped is not called a rollback.
    @Test func aRefusedUpdateIsNotCalledARollback() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        let result = try Self.ferryctl(["kexec", "--kernel", "/nonexistent/bzImage"], ferryd)
        #expect(result.status == 1)
        #expect(result.output.contains("live update refused, nothing was changed"), "\(result.output)")
        #expect(!result.output.contains("rolled back"))
    }

    @Test func everyCommandTakesJSONAndErrorsComeAsJSON() throws {
        let ferryd = try FerrydInstance(units: Self.units)
        let missing = try Self.ferryctl(["status", "nope", "--json"], ferryd)
        #expect(missing.status == 4)
        let error = try #require(JSONValue.parse(Array(missing.output.utf8))?["error"]?.object, "\(missing.output)")
        #expect(error["code"]?.string == "no-such-unit")
        #expect(error["exitStatus"]?.number == 4)
        #expect(error["message"]?.string == "unit nope.service not found")
        #expect(error["varlinkError"]?.string == "io.ferry.Manager.NoSuchUnit")
        let notRunning = try Self.run([ferryctlPath, "list-units", "--json", "--control", "/tmp/ferry-nothing-here.sock"])
        #expect(notRunning.status == 1)
        #expect(JSONValue.parse(Array(notRunning.output.utf8))?["error"]?["code"]?.string == "ferryd-not-running", "\(notRunning.output)")
        let usage = try Self.run([ferryctlPath, "status", "--json", "--no-such-option"])
        #expect(usage.status == 64)
        #expect(JSONValue.parse(Array(usage.output.utf8))?["error"]?["code"]?.string == "usage", "\(usage.output)")
        for arguments in [["status"], ["status", "sleeper"], ["show", "sleeper"], ["cat", "sleeper"], ["list-units"],
                          ["start", "once"], ["fdstore", "once"], ["history"]] {
            let result = try Self.ferryctl(arguments + ["--json"], ferryd)
            #expect(JSONValue.parse(Array(result.output.utf8))?.object != nil, "\(arguments): \(result.output)")
        }
        // Documented: the last update's record, or null on a host that never had one.
        #expect(JSONValue.parse(Array(try Self.ferryctl(["last-update", "--json"], ferryd).output.utf8)) == .null)
        let list = try Self.run([ferryctlPath, "conformance", "--list", "--json"])
        #expect((JSONValue.parse(Array(list.output.utf8))?.array?.count ?? 0) > 80)
        for command in [["status"], ["show"], ["cat"], ["list-units"], ["start"], ["stop"], ["restart"], ["enable"], ["disable"],
                        ["logs"], ["fdstore"], ["clean"], ["daemon-reload"], ["daemon-reexec"], ["kexec"], ["last-update"],
                        ["demo"], ["conformance"], ["emulator", "serve"], ["emulator", "kexec"], ["emulator", "status"],
                        ["luo", "check"], ["luo", "probe"]] {
            let help = try Self.run([ferryctlPath, "help"] + command)
            #expect(help.output.contains("--json"), "ferryctl \(command.joined(separator: " ")) takes --json")
        }
    }

    @Test func fdStoreListsEntriesInTheOrderTheServiceStoredThem() throws {
        let ferryd = try FerrydInstance(units: ["bulk.service": """
            [Service]
            Type=oneshot
            ExecStart=\(ferryctlPath) test-service store-many 6
            FileDescriptorStoreMax=10
            FileDescriptorStorePreserve=yes
            NotifyAccess=all
            """])
        #expect(try Self.ferryctl(["start", "bulk"], ferryd).status == 0)
        let json = try Self.ferryctl(["fdstore", "bulk", "--json"], ferryd)
        let paths = JSONValue.parse(Array(json.output.utf8))?["entries"]?.array?.compactMap { $0["path"]?.string } ?? []
        #expect(paths == (0..<6).map { "/memfd:bulk-\($0) (deleted)" }, "\(json.output)")
        let rows = try Self.ferryctl(["fdstore", "bulk"], ferryd).output.split(separator: "\n").dropFirst()
        #expect(rows.count == 6)
        for (index, row) in rows.enumerated() { #expect(row.contains("/memfd:bulk-\(index) (deleted)"), "\(rows)") }
    }

    @Test(.needs(.utilLinux)) func aControlSocketThatRefusesTheUserIsNotFerrydNotRunning() throws {
        let folder = TemporaryDirectory("ferryctl-eacces")
        chmod(folder.path, 0o700)
        let socket = try UnixSocket.listen(path: "\(folder.path)/control", kind: .stream)
        _ = socket
        let asNobody = try Self.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     ferryctlPath, "status", "--control", "\(folder.path)/control"])
        #expect(asNobody.status == 4)
        #expect(asNobody.output.contains("permission denied (EACCES)"), "\(asNobody.output)")
        #expect(!asNobody.output.contains("not running"))
    }

    @Test func statusShowsTheLiveUpdateBackendAndReadiness() throws {
        try withEmulator { emulator in
            let ferryd = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", emulator.socketPath])
            let status = try Self.ferryctl(["status"], ferryd)
            #expect(status.output.contains("Live update: emulator at \(emulator.socketPath)"), "\(status.output)")
            #expect(status.output.contains("Kexec: simulated by the emulator"))
            let readiness = try ferryd.call("GetManager").parameters["liveUpdate"]?.object ?? [:]
            #expect(readiness["backend"]?.string == "emulator" && readiness["ready"]?.bool == true)
            #expect(ferryd.log.contains("live update: emulator at \(emulator.socketPath)"))
        }
        let silent = try FerrydInstance(units: [:], extraArguments: ["--liveupdate-emulator", "/nonexistent/luo.sock"])
        let readiness = try silent.call("GetManager").parameters["liveUpdate"]?.object ?? [:]
        #expect(readiness["ready"]?.bool == false)
        #expect(readiness["summary"]?.string?.contains("no LUO emulator answers at /nonexistent/luo.sock") == true)
        let kernel = try FerrydInstance(units: [:])
        let shown = try Self.ferryctl(["show", "-p", "LiveUpdateBackend,LiveUpdate"], kernel).output
        #expect(shown == "LiveUpdateBackend=kernel\nLiveUpdate=\(LiveUpdateReadiness.check(KernelBackend()).summary)\n")
        #expect(kernel.log.contains("live update: "))
        if KernelFacts.current().releasePredatesLiveUpdate {
            // This machine's kernel is older than 6.19: the diagnosis says so, not "liveupdate=on".
            #expect(shown.contains("is older than 6.19"))
            let probe = try Self.run([ferryctlPath, "luo", "probe", "--kernel"])
            #expect(probe.output.contains("is older than 6.19") && !probe.output.contains("without liveupdate=on"))
            let check = try Self.run([ferryctlPath, "luo", "check"])
            #expect(check.status == 1 && check.output.contains("ready: no"))
        }
    }

    /// docs/man/ferryctl.1 is generated from the argument parser (docs/man/regenerate.sh); it must
    /// name every command ferryctl offers, with the abstract its help gives.
    @Test func theManPageKnowsEveryCommand() throws {
        var root = #filePath
        for _ in 0..<3 { root = String(root[..<root.lastIndex(of: "/")!]) }
        let page = readText("\(root)/docs/man/ferryctl.1")
        try #require(!page.isEmpty, "docs/man/ferryctl.1 is missing")
        let dump = try Self.run([ferryctlPath, "--experimental-dump-help"])
        let command = try #require(JSONValue.parse(Array(dump.output.utf8))?["command"])
        func check(_ command: JSONValue, path: String) {
            for sub in command["subcommands"]?.array ?? [] where sub["shouldDisplay"]?.bool != false {
                guard let name = sub["commandName"]?.string, name != "help" else { continue }
                let listed = page.contains(".It Em \(name)\n")
                #expect(listed, "ferryctl\(path) \(name) is not in docs/man/ferryctl.1: run docs/man/regenerate.sh")
                if let abstract = sub["abstract"]?.string {
                    let current = page.contains(abstract)
                    #expect(current, "the help of ferryctl\(path) \(name) changed: run docs/man/regenerate.sh")
                }
                check(sub, path: "\(path) \(name)")
            }
        }
        check(command, path: "")
        for other in ["ferry-bench.1", "ferryd.8"] { #expect(!readText("\(root)/docs/man/\(other)").isEmpty, "docs/man/\(other)") }
        #expect(readText("\(root)/LICENSE").contains("Apache License"))
    }

    @Test func everyToolAnswersVersionAndHelp() throws {
        let version = "\(FerryVersion.current)\n"
        #expect(try Self.run([ferryctlPath, "--version"]).output == "ferryctl " + version)
        #expect(try Self.run([ferrydPath, "--version"]).output == "ferryd " + version)
        let bench = builtProduct("ferry-bench")
        #expect(try Self.run([bench, "--version"]).output == "ferry-bench " + version)
        for tool in [ferryctlPath, ferrydPath, bench] {
            let help = try Self.run([tool, "--help"])
            #expect(help.status == 0, "\(tool) --help: \(help.output.suffix(300))")
            #expect(help.output.lowercased().contains("usage:"))
        }
        let completion = try Self.run([ferryctlPath, "--generate-completion-script", "bash"])
        #expect(completion.status == 0 && completion.output.contains("ferryctl"))
    }
}
