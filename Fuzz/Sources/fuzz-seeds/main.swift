// Writes the seed corpora, Corpus/<name>/seed-NN (fuzz-<name> reads them), from the inputs the test suite uses
// (Tests/SupervisorTests, Tests/FerryJSONTests, Tests/LiveUpdateTests) and from Ferry's own
// encoders, so every seed is a valid input the code was written for.
//
// usage: fuzz-seeds [CORPUS_DIR]   (default: Corpus)
import FDStore
import FerryControl
import FerryJSON
import FoundationEssentials
import LiveUpdate
import LiveUpdateReports
import Orchestrator
import Supervisor

#if canImport(Glibc)
import Glibc
#endif

let root = CommandLine.arguments.dropFirst().first ?? "Corpus"
var written = 0

@MainActor func seeds(_ fuzzer: String, _ inputs: [[UInt8]]) {
    let folder = "\(root)/\(fuzzer.dropFirst("fuzz-".count))"
    mkdir(root, 0o755)
    mkdir(folder, 0o755)
    for (index, input) in inputs.enumerated() {
        let path = "\(folder)/seed-\(index < 10 ? "0" : "")\(index)"
        guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = input.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        written += 1
    }
}

func utf8(_ texts: String...) -> [[UInt8]] { texts.map { Array($0.utf8) } }

// MARK: notify (Tests/SupervisorTests/UnitFileTests.swift, NotifyMessageTests; FerrydBadInputTests)

seeds("fuzz-notify", utf8(
    "READY=1\nSTATUS=a=b\n\nFDNAME=x", "READY", "=1", "A=1\u{0}B=2", "FDSTORE=1\nFDNAME=state",
    "FDSTOREREMOVE=1\nFDNAME=state", "BARRIER=1", "MAINPID=4242\nREADY=1", "STOPPING=1", "RELOADING=1\nMONOTONIC_USEC=1",
    "ERRNO=5", "FDSTORE=1\nFDNAME=vm0\nFDPOLL=0", "STATUS=serving 1048576 bytes\n"
) + [Array("FDSTORE=1\r\nno assignment\r\nSTATUS=".utf8) + [0xFF, 0xFE] + Array("\nFDNAME=x\r\n".utf8) + [0], [0]])

// MARK: unit files (UnitFileTests, the VM scenario's units)

seeds("fuzz-unitfile", utf8(
    """
    # comment
    ; also a comment
    [Unit]
    Description = spaced out
    [Service]
    ExecStart=/bin/echo one \\
      # a comment inside a continuation is skipped
      two
    Environment=A=1
    Environment=B=2
    """,
    "Orphan=1\n[Broken\n[Service]\nno equals sign\n=novalue\n",
    """
    [Unit]
    Description=db
    StartLimitBurst=3
    StartLimitIntervalSec=1min 30s
    Requires=a.service b.target
    After=a.service
    [Service]
    Type=notify
    ExecStart=/bin/true
    Restart=on-failure
    RestartSec=250ms
    FileDescriptorStoreMax=7
    FileDescriptorStorePreserve=on-success
    TimeoutStopSec=infinity
    Unknown=1
    [Install]
    WantedBy=multi-user.target
    """,
    """
    #@ a template instance
    [Service]
    Type=oneshot
    Environment="ARGS=x  y" NAME=ferry
    ExecStartPre=-/bin/echo $ARGS pre-${NAME}-post "$NAME"
    ExecStart=/bin/echo ${UNSET:-zero} ${NAME:+set} ${bad-name} %n %N %p %i %I %t %% %Q %j %f %H
    ExecStart=@/bin/sh myname -c true
    ExecStop=:/bin/echo 'd "e"' f\\ g \\x41\\n
    EnvironmentFile=-/etc/default/none
    WorkingDirectory=-/tmp
    User=nobody
    Group=nogroup
    KillMode=mixed
    PIDFile=/run/x.pid
    TimeoutStartSec=5
    NotifyAccess=all
    RemainAfterExit=yes
    """,
    "vm@guest\\x2d1.service\n[Service]\nExecStart=/bin/ferryctl demo-service %i --size 1048576\nFileDescriptorStorePreserve=yes\n",
    "[Service]\nType=notify\nExecStart=/bin/ferryctl demo-service cache --size 1048576 --seed 5\nFileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n",
    "[Service]\nType=forking\nExecStart=sh -c 'sleep 100 &'\nRestart=always\nTimeoutSec=1h 2m 3s 4ms 5us\n"
))

// MARK: LUO mapping (LiveUpdateMappingTests)

var mapping = LiveUpdateMapping(units: [
    ("b.service", [.fd(name: "state", token: 1), .session(name: "vm0", sessionName: "b-vm0")]),
    ("a.service", [.fd(name: "x:y \"q\"", token: 2)]),
])
mapping.kexecsCount = 3
mapping.state["ferry"] = .object(["activeUnits": .array([.string("b.service")])])
seeds("fuzz-mapping", [mapping.encoded()] + utf8(
    #"{"version":1,"state":{"kexecsCount":"7"},"units":{"foo.service":{"fdstore":[{"type":"fd","name":"state","token":"1"},{"type":"luo_session","name":"vm0","sessionName":"foo-vm0","extra":true}]}},"future":1}"#,
    #"{"foo.service":[{"type":"fd","name":"state","token":1}]}"#,
    #"""
    {"version":1,"units":{
      "ok.service":{"fdstore":[{"type":"fd","name":"good","token":3},{"type":"fd","name":"zero","token":0},
        {"type":"fd","name":"dup","token":3},{"type":"fd","name":"none"},{"type":"fd","name":"neg","token":-1},
        {"type":"luo_session","name":"s"},{"type":"weird","name":"w"},{"name":"notype"},"text",
        {"type":"fd","name":"null","token":null},{"type":"fd","name":7,"token":9}]},
      "../evil.service":{"fdstore":[{"type":"fd","name":"e","token":4}]},
      "nolist.service":{"fdstore":"nope"},
      "missing.service":{}
    }}
    """#,
    "{\"version\":1,", "[1,2]", "{\"version\":\"x\"}", "{\"version\":2,\"units\":{}}", "{\"version\":1,\"units\":5}",
    #"{"version":1,"state":null,"units":{"a@b.service":{"fdstore":[]}}}     "#
))

// MARK: nested-manager mapping (UpstreamMappingTests)

let upstream = UpstreamMapping(units: [
    ("b.service", [.init(name: "state", index: 3), .init(name: "state", index: 1)]),
    ("a.service", [.init(name: "stored", index: 2)]),
])
seeds("fuzz-upstream", [upstream.encoded()] + utf8("", "[1]", "{\"a\":", "null",
    #"{"a.service":[{"name":"x","index":0},{"name":"y"},{"index":4},{"name":"z","index":1.5}],"b c":[]}"#))

// MARK: re-exec state (the shape Daemon.reexecute writes)

var report = RestoreReport()
report.found = true
report.kexecCount = 1
report.problems = ["unit 'x.service' fd 'y': token 9 used twice, skipped"]
let reportJSON = String(decoding: (try? JSONEncoder().encode(report)) ?? Data("{}".utf8), as: UTF8.self)
let states = [
    #"{"version":1,"notifyFD":3,"controlFD":4,"kexecCount":0,"units":[]}"#,
    #"{"version":1,"notifyFD":3,"controlFD":4,"kexecCount":2,"lockFD":5,"ferrydVersion":"0.1.0","units":[{"name":"a.service","active":"active","sub":"running","result":"success","mainPID":100,"processGroup":100,"status":"ready","restarts":1,"store":[{"name":"state","fd":7,"poll":true,"upstreamIndex":2},{"name":"vm0","fd":8,"poll":false}],"output":[9,10]},{"name":"late.service","active":"inactive","sub":"dead-resources-pinned","result":"success","restarts":0,"stubLimit":3,"store":[]}],"lastRestore":"#
        + reportJSON + "}",
]
for state in states where ReexecState.decode(Array(state.utf8)) == nil { fatalError("seed state does not decode: \(state)") }
seeds("fuzz-reexec", utf8(states[0], states[1], #"{"version":2,"notifyFD":3,"controlFD":4,"kexecCount":0,"units":[]}"#))

// MARK: Varlink (the calls ferryctl makes, and ferryd's replies); first byte: chunk size and limit

let calls: [Varlink.Call] = [
    Varlink.Call(method: "io.ferry.Manager.GetManager"),
    Varlink.Call(method: "io.ferry.Manager.StartUnit", parameters: ["name": .string("a.service"), "noBlock": .bool(true)]),
    Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: ["kernel": .string("/boot/vmlinuz"), "rehearse": .bool(false)], more: true),
    Varlink.Call(method: "org.varlink.service.GetInterfaceDescription", parameters: ["interface": .string("io.ferry.Manager")], oneway: true),
]
let replies: [Varlink.Reply] = [
    Varlink.Reply(parameters: ["units": .array([.object(["name": .string("a.service"), "fds": .number(3)])])]),
    Varlink.Reply.failure("io.ferry.Manager.NoSuchUnit", ["name": .string("b.service")]),
]
var varlinkSeeds: [[UInt8]] = []
varlinkSeeds.append([0x07] + calls.flatMap { $0.encoded() })
varlinkSeeds.append([0x3F] + replies.flatMap { $0.encoded() })
for call in calls { varlinkSeeds.append([0x00] + call.encoded()) }
varlinkSeeds.append([0x41] + Array(String(repeating: "x", count: 100).utf8) + [0])
varlinkSeeds += utf8("\u{01}{\"method\":1}\u{0}{\"method\":\"a\",\"parameters\":null}\u{0}{\"method\":\"a\",\"parameters\":[]}\u{0}")
seeds("fuzz-varlink", varlinkSeeds)

// MARK: JSON (JSONParserTests)

seeds("fuzz-json", utf8(
    #" {"a":[1,-2.5e1,true,false,null],"s":"q\"\\\/\n\u00e9\ud83d\ude00","o":{}} "#,
    "", "{", "[1,]", "{\"a\":}", "\"open", "tru", "1 2", "{\"a\":1,}", "\"\u{1}\"", "\"\\ud800\"",
    String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    #"{"version":1,"state":{"z":1,"a":2},"units":{"b.service":{},"a.service":{"x":{"q":1}},"c.service":[]}}"#,
    #"{"units":[1]}"#, "1e308", "-0.0", "123456789012345678901234567890"
) + [[0xFF, 0xFE]])

// MARK: emulator wire (EmulatorWireTests)

let requests: [EmulatorWire.Request] = [
    EmulatorWire.Request(kind: .ioctl, request: 0xBA40, flags: [.payloadAttached], argument: [16, 0, 0, 0, 5, 0, 0, 0], text: "x"),
    EmulatorWire.Request(kind: .openDevice), EmulatorWire.Request(kind: .status),
    EmulatorWire.Request(kind: .simulateKexec, text: "incompatible"),
    EmulatorWire.Request(kind: .ioctl, request: 0xBA00, flags: [.nullArgument, .callerTableFull]),
]
seeds("fuzz-emulator-wire", requests.map { $0.encoded() } + [
    EmulatorWire.Reply(errno: 16, output: [1, 2, 3], text: "{}").encoded(),
    EmulatorAddress(server: "12-ab", kind: .session, serial: 42, name: Array("vm:7/a b".utf8)).bytes,
    EmulatorAddress(server: "12-ab@short-link", kind: .device, serial: 3).bytes,
])

// MARK: the emulated kernel: programs in fuzz-emulator-kernel's format

/// op 0 open, 1 close device, 2 device ioctl, 3 session ioctl, 5 close session, 6 change a memfd, 7 kexec.
enum Op {
    static let open: [UInt8] = [0], closeDevice: [UInt8] = [1]
    /// request index in LiveUpdateRequest.allCases, flags, then a well-formed struct (mode 2, no extra, honest size).
    static func ioctl(_ index: UInt8, flags: UInt8 = 0, _ fields: [UInt8]) -> [UInt8] { [index, flags, 2, 0, 0] + fields }
    static func name(_ text: String) -> [UInt8] { [UInt8(text.utf8.count)] + Array(text.utf8) }
    static func create(_ session: String) -> [UInt8] { [2] + ioctl(0, name(session)) }
    static func retrieve(_ session: String) -> [UInt8] { [2] + ioctl(1, name(session)) }
    static func preserve(_ session: UInt8, token: UInt8, contents: String) -> [UInt8] {
        [3, session] + ioctl(2, flags: 2, [token]) + [0] + name(contents) + [0]
    }
    static func retrieveFD(_ session: UInt8, token: UInt8) -> [UInt8] { [3, session] + ioctl(3, [token]) }
    static func finish(_ session: UInt8, reserved: UInt8 = 0) -> [UInt8] { [3, session] + ioctl(4, [reserved]) }
    static func getName(_ session: UInt8) -> [UInt8] { [3, session] + ioctl(5, name("") + [0]) }
    static func closeSession(_ session: UInt8) -> [UInt8] { [5, session] }
    static func grow(_ memfd: UInt8) -> [UInt8] { [6, memfd, 0, 0x00, 0x10] }
    static func kexec(incompatible: Bool = false) -> [UInt8] { [7, incompatible ? 0xFF : 0] }
}
let roundTrip = Op.open + Op.create("vm") + Op.preserve(0, token: 1, contents: "hello") + Op.preserve(0, token: 2, contents: "world")
    + Op.getName(0) + Op.kexec() + Op.open + Op.retrieve("vm") + Op.retrieveFD(0, token: 1) + Op.retrieveFD(0, token: 1)
    + Op.getName(0) + Op.finish(0) + Op.retrieveFD(0, token: 2) + Op.closeSession(0)
let refusals = Op.open + Op.open + Op.create("a") + Op.create("a") + Op.create("") + Op.preserve(0, token: 1, contents: "x")
    + Op.preserve(0, token: 1, contents: "y") + Op.retrieveFD(0, token: 1) + Op.finish(0, reserved: 0xEE) + Op.closeSession(0)
    + Op.retrieve("a") + Op.closeDevice
let changed = Op.open + Op.create("s") + Op.preserve(0, token: 1, contents: "size") + Op.grow(0) + Op.kexec()
    + Op.open + Op.retrieve("s") + Op.retrieveFD(0, token: 1) + Op.kexec(incompatible: true) + Op.open
seeds("fuzz-emulator-kernel", [[2] + roundTrip, [3] + roundTrip, [0] + roundTrip, [1] + refusals, [2] + refusals, [3] + changed])

print("fuzz-seeds: wrote \(written) seeds under \(root)/")

/// Built with the fuzzers' flags (one build), this program links libFuzzer too, which needs the entry.
@_cdecl("LLVMFuzzerTestOneInput")
public func unused(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { 0 }
