import FerryControl
import FerryJSON
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Requires=, Wants=, After=, Before=, Conflicts=, [Install] and the default target.
@Suite struct FerrydDependencyTests {
    /// A oneshot unit that writes its name to `trace` when it starts (and, with ExecStop=, when it stops).
    static func step(_ name: String, trace: String, unit extra: String = "", install: String = "") -> String {
        """
        [Unit]
        \(extra)
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/bin/sh -c 'echo start-\(name) >> \(trace)'
        ExecStop=/bin/sh -c 'echo stop-\(name) >> \(trace)'
        \(install.isEmpty ? "" : "[Install]\n\(install)")
        """
    }

    static func lines(_ path: String) -> [String] { readText(path).split(separator: "\n").map(String.init) }

    @Test func startsInOrderAndStopsInReverse() throws {
        let ferryd = try FerrydInstance(units: [:])
        let trace = "\(ferryd.directory.path)/trace"
        ferryd.writeUnit("a.service", Self.step("a", trace: trace, unit: "Requires=b.service\nAfter=b.service"))
        ferryd.writeUnit("b.service", Self.step("b", trace: trace, unit: "Wants=c.service\nAfter=c.service network.target"))
        ferryd.writeUnit("c.service", Self.step("c", trace: trace))
        #expect(try ferryd.start("a.service") == "active (exited)", "\(ferryd.log)")
        #expect(Self.lines(trace) == ["start-c", "start-b", "start-a"])
        // Stopping b stops a, which requires it, first.
        #expect(try ferryd.stop("b.service") == "inactive (dead)")
        #expect(ferryd.waitUntil { try ferryd.state("a.service") == "inactive (dead)" })
        #expect(Self.lines(trace).suffix(2) == ["stop-a", "stop-b"])
        #expect(try ferryd.state("c.service") == "active (exited)")
    }

    @Test func aFailedRequirementFailsTheDependent() throws {
        let ferryd = try FerrydInstance(units: [:])
        let trace = "\(ferryd.directory.path)/trace"
        ferryd.writeUnit("bad.service", "[Service]\nType=oneshot\nExecStart=/bin/false\n")
        ferryd.writeUnit("needy.service", Self.step("needy", trace: trace, unit: "Requires=bad.service\nAfter=bad.service"))
        let reply = try ferryd.call("StartUnit", ["name": .string("needy.service")])
        #expect(reply.error == "io.ferry.Manager.StartFailed")
        #expect(reply.parameters["reason"]?.string == "dependency")
        #expect(Self.lines(trace).isEmpty)
        #expect(ferryd.log.contains("Dependency failed for needy.service"))
    }

    @Test func conflictsStopTheOtherUnit() throws {
        let ferryd = try FerrydInstance(units: [:])
        let trace = "\(ferryd.directory.path)/trace"
        ferryd.writeUnit("x.service", Self.step("x", trace: trace, unit: "Conflicts=y.service"))
        ferryd.writeUnit("y.service", Self.step("y", trace: trace))
        #expect(try ferryd.start("y.service") == "active (exited)")
        #expect(try ferryd.start("x.service") == "active (exited)")
        #expect(try ferryd.state("y.service") == "inactive (dead)")
        #expect(Self.lines(trace) == ["start-y", "stop-y", "start-x"])
    }

    @Test func anOrderingCycleIsNamedAndBroken() throws {
        let ferryd = try FerrydInstance(units: [:])
        let trace = "\(ferryd.directory.path)/trace"
        ferryd.writeUnit("p.service", Self.step("p", trace: trace, unit: "Wants=q.service\nAfter=q.service"))
        ferryd.writeUnit("q.service", Self.step("q", trace: trace, unit: "After=p.service"))
        #expect(try ferryd.start("p.service") == "active (exited)", "\(ferryd.log)")
        #expect(ferryd.log.contains("found an ordering cycle"))
        #expect(ferryd.log.contains("deleted job q.service/start to break the ordering cycle"))
        #expect(Self.lines(trace) == ["start-p"])
    }

    @Test func enabledUnitsStartOnAColdStart() throws {
        let trace = "/tmp/ferry-enabled-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(trace) }
        let ferryd = try FerrydInstance(units: [
            "early.service": Self.step("early", trace: trace),
            "late.service": Self.step("late", trace: trace, unit: "Requires=early.service\nAfter=early.service",
                                      install: "WantedBy=multi-user.target"),
            "multi-user.target.wants/late.service": "",
            "idle.service": Self.step("idle", trace: trace, install: "WantedBy=multi-user.target"),
        ])
        #expect(ferryd.waitUntil { try ferryd.state("late.service") == "active (exited)" }, "\(ferryd.log)")
        #expect(Self.lines(trace) == ["start-early", "start-late"])
        #expect(try ferryd.state("idle.service") == "inactive (dead)")
        // enable and disable manage the links, and GetUnit says so.
        let enabled = try ferryd.call("EnableUnit", ["name": .string("idle.service")])
        #expect(enabled.parameters["links"]?.array?.first?.string == "\(ferryd.units)/multi-user.target.wants/idle.service")
        #expect(try ferryd.unit("idle.service")["enabled"]?.bool == true)
        #expect(try ferryd.call("DisableUnit", ["name": .string("idle.service")]).error == nil)
        #expect(try ferryd.unit("idle.service")["enabled"]?.bool == false)
        #expect(try ferryd.call("EnableUnit", ["name": .string("early.service")]).error == "io.ferry.Manager.StartFailed")
    }

    @Test(.needs(.pythonSystemd)) func noBlockAnswersAtOnce() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("slow.service", toolUnit("sleep", extra: "TimeoutStartSec=30"))
        let reply = try ferryd.call("StartUnit", ["name": .string("slow.service"), "noBlock": .bool(true)])
        #expect(reply.error == nil)
        #expect(reply.parameters["unit"]?["active"]?.string == "activating")
    }
}
