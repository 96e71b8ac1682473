import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Processes as systemd runs them: other users, start timeouts, forking daemons, the control
/// commands around the main process, and KillMode=.
@Suite struct FerrydProcessTests {
    @Test(.needs(.pythonSystemd)) func aUserNobodyServiceNotifiesAndStores() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.directory.write("shared/tool.py", readText(tool), mode: 0o755)
        ferryd.writeUnit("nobody.service", """
            [Service]
            Type=notify
            User=nobody
            ExecStart=\(systemPython) \(ferryd.directory.path)/shared/tool.py store data fromnobody barrier ready sleep
            FileDescriptorStoreMax=4
            TimeoutStartSec=20
            """)
        #expect(try ferryd.start("nobody.service") == "active (running)", "\(ferryd.log)")
        #expect(try ferryd.storeNames("nobody.service") == ["data"])
    }

    @Test(.needs(.pythonSystemd)) func aNotifyServiceThatNeverGetsReadyFailsAfterTimeoutStartSec() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("mute.service", toolUnit("sleep", extra: "TimeoutStartSec=400ms"))
        let reply = try ferryd.call("StartUnit", ["name": .string("mute.service")])
        #expect(reply.error == "io.ferry.Manager.StartFailed")
        #expect(try ferryd.state("mute.service") == "failed (failed)")
        #expect(try ferryd.unit("mute.service")["result"]?.string == "timeout")
        #expect(ferryd.log.contains("mute.service: start operation timed out"))
    }

    @Test func forkingWithPIDFile() throws {
        let ferryd = try FerrydInstance(units: [:])
        let pidFile = "\(ferryd.directory.path)/daemon.pid"
        ferryd.writeUnit("forker.service", """
            [Service]
            Type=forking
            PIDFile=\(pidFile)
            ExecStart=/bin/sh -c 'sleep 300 & echo $! > \(pidFile)'
            """)
        #expect(try ferryd.start("forker.service") == "active (running)", "\(ferryd.log.suffix(3000))")
        let daemon = try #require(pid_t(firstWord(readText(pidFile))))
        #expect(try ferryd.unit("forker.service")["mainPID"]?.number == Double(daemon))
        #expect(try ferryd.stop("forker.service") == "inactive (dead)")
        #expect(kill(daemon, 0) == -1, "the daemon outlived its unit")
    }

    @Test func controlCommandsRunInOrder() throws {
        let ferryd = try FerrydInstance(units: [:])
        let trace = "\(ferryd.directory.path)/trace"
        func step(_ word: String) -> String { "/bin/sh -c 'echo \(word) >> \(trace)'" }
        ferryd.writeUnit("steps.service", """
            [Service]
            Type=oneshot
            RemainAfterExit=yes
            ExecStartPre=\(step("pre1"))
            ExecStartPre=-/bin/false
            ExecStartPre=\(step("pre2"))
            ExecStart=\(step("main"))
            ExecStartPost=\(step("post"))
            ExecStop=\(step("stop"))
            """)
        #expect(try ferryd.start("steps.service") == "active (exited)", "\(ferryd.log)")
        #expect(ferryd.waitUntil { readText(trace).split(separator: "\n").count >= 4 })
        #expect(try ferryd.stop("steps.service") == "inactive (dead)")
        #expect(readText(trace).split(separator: "\n") == ["pre1", "pre2", "main", "post", "stop"])
    }

    @Test func aFailingExecStartPreFailsTheStart() throws {
        let ferryd = try FerrydInstance(units: [:])
        let marker = "\(ferryd.directory.path)/ran"
        ferryd.writeUnit("gate.service", """
            [Service]
            ExecStartPre=/bin/false
            ExecStart=/bin/sh -c 'touch \(marker); exec sleep 300'
            """)
        let reply = try ferryd.call("StartUnit", ["name": .string("gate.service")])
        #expect(reply.error == "io.ferry.Manager.StartFailed")
        #expect(try ferryd.state("gate.service") == "failed (failed)")
        #expect(access(marker, F_OK) != 0, "ExecStart= ran after a failed ExecStartPre=")
    }

    @Test func killModeProcessLeavesTheOtherProcesses() throws {
        let ferryd = try FerrydInstance(units: [:])
        let childFile = "\(ferryd.directory.path)/child.pid"
        ferryd.writeUnit("parent.service", """
            [Service]
            KillMode=process
            ExecStart=/bin/sh -c 'sleep 300 & echo $! > \(childFile); exec sleep 301'
            """)
        #expect(try ferryd.start("parent.service") == "active (running)")
        #expect(ferryd.waitUntil { pid_t(firstWord(readText(childFile))) != nil })
        let child = try #require(pid_t(firstWord(readText(childFile))))
        defer { kill(child, SIGKILL) }
        #expect(try ferryd.stop("parent.service") == "inactive (dead)")
        #expect(kill(child, 0) == 0, "KillMode=process killed a process other than the main one")
    }
}

extension FerrydProcessTests {
    @Test func unitOutputIsLabelledKeptAndSurvivesReexec() throws {
        let ferryd = try FerrydInstance(units: [:])
        let go = "\(ferryd.directory.path)/go"
        ferryd.directory.write("talk.sh", """
            echo hello
            printf '<3>bad \\033]0;title\\007 thing\\n' >&2
            while [ ! -e \(go) ]; do sleep 0.05; done
            echo after
            """)
        ferryd.writeUnit("talk.service", "[Service]\nExecStart=/bin/sh \(ferryd.directory.path)/talk.sh\n")
        _ = try ferryd.start("talk.service")
        func lines() throws -> [String] {
            try ferryd.call("GetUnitLogs", ["name": .string("talk.service")]).parameters["lines"]?.array?.compactMap(\.string) ?? []
        }
        #expect(ferryd.waitUntil { try lines() == ["hello", "bad \\x1b]0;title\\x07 thing"] }, "\((try? lines()) ?? [])")
        #expect(ferryd.log.contains("talk.service: hello"))
        #expect(ferryd.log.contains("error: talk.service: bad \\x1b]0;title\\x07 thing"))
        // The pipe rides a re-exec: what the unit writes next is still read.
        #expect(try ferryd.call("Reexecute").error == nil)
        #expect(ferryd.waitUntil { (try? ferryd.call("GetManager"))?.error == nil })
        close(open(go, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        #expect(ferryd.waitUntil { try lines().contains("after") }, "\(ferryd.log.suffix(2000))")
    }
}

private func firstWord(_ text: String) -> String {
    String(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first ?? "")
}
