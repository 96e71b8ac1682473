import ControlServer
import FerryControl
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hostile or broken input must never crash ferryd, leak a descriptor, or go unexplained.
@Suite struct FerrydBadInputTests {
    static func hex(_ text: String) -> String { hex(Array(text.utf8)) }
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format2: $0) }.joined() }

    @Test(.needs(.pythonSystemd)) func malformedDatagramsAreRefusedWithReasons() throws {
        let ferryd = try FerrydInstance(units: [:])
        // Let ferryd settle, then count its descriptors.
        let before = ferryd.settledDescriptors()
        let cases: [(String, String)] = [
            (Self.hex("no assignment here") + " 2", "line without '='"),
            (Self.hex("STATUS=" + String(repeating: "a", count: 5000)) + " 1", "longer than 4096 bytes"),
            (Self.hex([0x53, 0x54, 0x41, 0x54, 0x55, 0x53, 0x3D, 0xFF, 0xFE]) + " 1", "not valid UTF-8"),
            (Self.hex("STATUS=a\u{0}b"), "contains a NUL byte"),
            (Self.hex("FDSTORE=1\nFDNAME=\u{7}bell") + " 1", "invalid FDNAME="),
            (Self.hex("BARRIER=1\nSTATUS=x") + " 1", "BARRIER=1 must be alone"),
            (Self.hex("BARRIER=1") + " 2", "BARRIER=1 needs exactly one fd, got 2"),
            (Self.hex("BARRIER=1"), "BARRIER=1 needs exactly one fd, got 0"),
            (Self.hex("STATUS=fds without FDSTORE") + " 3", "carried 3 fd(s) without FDSTORE=1"),
            (Self.hex("FDSTOREREMOVE=1"), "FDSTOREREMOVE=1 needs a valid FDNAME="),
            (Self.hex("ERRNO=banana"), "ERRNO=banana is not a valid errno"),
            (Self.hex("MAINPID=1"), "MAINPID=1 is not a process of the unit"),
            (Self.hex("FDSTORE=1") + " 40", "cannot store more fds than FileDescriptorStoreMax=10"),
        ]
        let actions = cases.map { "raw \($0.0)" }.joined(separator: " ")
        ferryd.writeUnit("hostile.service", toolUnit("\(actions) barrier ready exit 0", extra: "FileDescriptorStorePreserve=no"))
        _ = try ferryd.start("hostile.service")
        #expect(ferryd.waitUntil { try ferryd.state("hostile.service") == "inactive (dead)" })
        let log = ferryd.log
        for (_, reason) in cases {
            #expect(log.contains(reason), "no warning for: \(reason)")
        }
        // Every warning about the service names it.
        for line in log.split(separator: "\n") where line.contains("warning:") && line.contains("notify") {
            #expect(line.contains("hostile.service") || line.contains("belongs to no unit"), "\(line)")
        }
        #expect(ferryd.isAlive)
        // The unit's output pipe (both ends) stays for its next run; nothing else may.
        #expect(ferryd.waitUntil { ferryd.openDescriptors <= before + 2 }, "ferryd holds \(ferryd.openDescriptors) fds, had \(before)")
    }

    /// A message systemd would take (CRLF, a bad line, one trailing NUL) stores its fd here too.
    @Test(.needs(.pythonSystemd)) func aBadLineDoesNotCostTheFd() throws {
        let ferryd = try FerrydInstance(units: [:])
        let bytes = Array("FDSTORE=1\r\nFDNAME=kept\r\nno equals sign\r\nSTATUS=".utf8) + [0xFF] + Array("\n".utf8) + [0]
        ferryd.writeUnit("lenient.service", toolUnit("raw \(Self.hex(bytes)) 1 barrier ready sleep"))
        _ = try ferryd.start("lenient.service")
        #expect(ferryd.waitUntil { try ferryd.storeNames("lenient.service") == ["kept"] }, "\(ferryd.log)")
        #expect(ferryd.log.contains("lenient.service: notify message from pid"))
        #expect(ferryd.log.contains("line without '=': 'no equals sign', ignored"))
    }

    @Test func messagesFromOutsideAnyUnitAreRefused() throws {
        let ferryd = try FerrydInstance(units: [:])
        let before = ferryd.settledDescriptors()
        let socket = try UnixSocket.socket(.datagram)
        let memfd = try Memfd.create(name: "stray")
        let address = Array(ferryd.notify.utf8)
        _ = address
        let connected = try UnixSocket.connect(path: ferryd.notify, kind: .datagram)
        _ = socket
        try UnixSocket.send(connected.borrowed, Array("FDSTORE=1\nFDNAME=stray".utf8), descriptors: [memfd.rawValue])
        #expect(ferryd.waitUntil { ferryd.log.contains("which belongs to no unit, refused; closing 1 fd(s)") })
        #expect(ferryd.waitUntil { ferryd.openDescriptors <= before }, "ferryd holds \(ferryd.openDescriptors), had \(before)")
    }

    @Test(.needs(.pythonSystemd), .needs(.utilLinux)) func truncatedControlDataIsRefusedAndClosed() throws {
        // With ferryd's soft descriptor limit just above what it uses, the kernel installs the fds
        // that fit and flags MSG_CTRUNC.
        let ferryd = try FerrydInstance(units: [:])
        let used = ferryd.settledDescriptors()
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let limiter = try Child.spawn(["/usr/bin/prlimit", "--pid", "\(ferryd.child.pid)", "--nofile=\(used + 12):\(limit.rlim_max)"])
        try #require(limiter.wait() == 0, "\(limiter.output)")
        ferryd.writeUnit("big.service", toolUnit("raiselimit raw \(Self.hex("FDSTORE=1\nFDNAME=many")) 60 barrier ready exit 0"))
        _ = try ferryd.start("big.service")
        #expect(ferryd.waitUntil { ferryd.log.contains("MSG_CTRUNC") }, "\(ferryd.log)")
        #expect(ferryd.log.contains("big.service: notify message from pid"))
        #expect(try ferryd.storeNames("big.service") == [])
        // The unit's output pipe (both ends) stays for its next run; nothing else may.
        #expect(ferryd.waitUntil { ferryd.openDescriptors <= used + 2 }, "ferryd holds \(ferryd.openDescriptors), had \(used)")
        #expect(ferryd.isAlive)
    }

    @Test(.needs(.pythonSystemd)) func aFloodingServiceDoesNotStarveAnother() throws {
        let ferryd = try FerrydInstance(units: [:])
        ferryd.writeUnit("flood.service", toolUnit("ready flood 200000 sleep"))
        ferryd.writeUnit("quiet.service", toolUnit("ready sleep"))
        _ = try ferryd.start("flood.service")
        // READY=1 of the quiet service must get through while the flood goes on.
        #expect(try ferryd.start("quiet.service") == "active (running)")
        #expect(ferryd.isAlive)
        #expect(try ferryd.call("GetManager").parameters["notifyMessages"]?.number ?? 0 > 10)
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}

/// The control socket must shrug off what is not Varlink.
@Suite struct ControlSocketBadInputTests {
    @Test func garbageOnTheControlSocket() throws {
        let ferryd = try FerrydInstance(units: [:])
        let before = ferryd.settledDescriptors()
        let payloads: [[UInt8]] = [
            Array("not json".utf8) + [0],
            Array("{\"method\":5}".utf8) + [0],
            Array("{\"method\":\"io.ferry.Manager.GetUnit\",\"parameters\":[1]}".utf8) + [0],
            Array("{\"method\":\"io.ferry.Manager.GetUnit\",\"parameters\":{\"name\":\"../x.service\"}}".utf8) + [0],
            [UInt8](repeating: 0x41, count: 2 << 20),  // no terminator, larger than any message
            [0xFF, 0xFE, 0x00],
        ]
        for payload in payloads {
            let socket = try UnixSocket.connect(path: ferryd.control, kind: .stream)
            var sent = 0
            while sent < payload.count {
                let count = payload.withUnsafeBytes { send(socket.rawValue, $0.baseAddress! + sent, $0.count - sent, CInt(MSG_NOSIGNAL)) }
                if count <= 0 { break }
                sent += count
            }
        }
        #expect(ferryd.isAlive)
        #expect(try ferryd.call("GetManager").error == nil)
        #expect(try ferryd.call("GetUnit", ["name": .string("../x.service")]).error == "io.ferry.Manager.InvalidUnitName")
        #expect(ferryd.waitUntil { ferryd.openDescriptors <= before }, "ferryd holds \(ferryd.openDescriptors), had \(before)")
    }

    /// Clients that pipeline calls and never read their replies stall only themselves.
    @Test func clientsThatNeverReadDoNotBlockTheLoop() throws {
        let ferryd = try FerrydInstance(units: [:])
        let call = Varlink.Call(method: "io.ferry.Manager.GetManager").encoded()
        var hogs: [CInt] = []
        defer { hogs.forEach { _ = close($0) } }
        for _ in 0..<20 {
            let socket = try UnixSocket.connect(path: ferryd.control, kind: .stream)
            let batch = Array([[UInt8]](repeating: call, count: 2000).joined())
            // Non-blocking: ferryd stops reading a client whose replies pile up, so this may stall.
            _ = batch.withUnsafeBytes { send(socket.rawValue, $0.baseAddress!, $0.count, CInt(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            hogs.append(socket.release())
        }
        let started = MonotonicClock.now()
        #expect(try ferryd.call("GetManager").error == nil)
        // The old blocking writer needed about a second per hog (20 s); allow a slow machine 10.
        #expect(MonotonicClock.now() - started < .seconds(10))
        #expect(ferryd.isAlive)
    }

    /// One uid gets at most 1,024 connections; the next is closed at once and others still connect.
    @Test func connectionsPerUIDAreCapped() throws {
        ResourceLimits.raiseDescriptorLimit()
        let ferryd = try FerrydInstance(units: [:])
        var open: [CInt] = []
        defer { open.forEach { _ = close($0) } }
        for _ in 0..<VarlinkServer.connectionsPerUID {
            open.append(try UnixSocket.connect(path: ferryd.control, kind: .stream).release())
        }
        let extra = try UnixSocket.connect(path: ferryd.control, kind: .stream)
        var byte: UInt8 = 0
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(extra.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #expect(recv(extra.rawValue, &byte, 1, 0) == 0, "the connection over the cap was not closed")
        open.forEach { _ = close($0) }
        open = []
        #expect(ferryd.waitUntil { try ferryd.call("GetManager").error == nil })
    }
}
