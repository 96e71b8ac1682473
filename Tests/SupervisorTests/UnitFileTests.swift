import FDStore
import FerrySystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Supervisor

@Suite struct UnitFileTests {
    @Test func sectionsCommentsContinuationsAndWhitespace() {
        let file = UnitFile.parse("""
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
            """)
        #expect(file.value("Unit", "Description")?.value == "spaced out")
        #expect(file.value("Service", "ExecStart")?.value == "/bin/echo one  two")
        #expect(file.values("Service", "Environment").map(\.value) == ["A=1", "B=2"])
        #expect(file.warnings == [])
    }

    @Test func problemsAreWarningsWithLineNumbers() {
        let file = UnitFile.parse("Orphan=1\n[Broken\n[Service]\nno equals sign\n=novalue\n")
        #expect(file.warnings.count == 4)
        #expect(file.warnings[0].hasPrefix("line 1:"))
        #expect(file.warnings[1].contains("malformed section header"))
        #expect(file.warnings[2].hasPrefix("line 4:"))
    }

    @Test func wordsWithQuotesAndEscapes() throws {
        #expect(try Words.split(#"a "b c" 'd "e"' f\ g \x41\n"#) == ["a", "b c", #"d "e""#, "f g", "A\n"])
        #expect(throws: Words.Failure.unterminatedQuote) { try Words.split("\"open") }
        #expect(throws: Words.Failure.self) { try Words.split(#"bad \q"#) }
    }

    @Test func execCommandPrefixesAndVariables() throws {
        let environment = ["ARGS": "x  y", "NAME": "ferry"]
        let command = try ExecCommand.parse(#"-/bin/echo $ARGS pre-${NAME}-post "$NAME""#, environment: environment).get()
        #expect(command.ignoreFailure)
        #expect(command.expandedArguments(environment) == ["/bin/echo", "x", "y", "pre-ferry-post", "ferry"])
        let defaults = try ExecCommand.parse(#"/bin/echo ${UNSET:-zero} ${NAME:+set} ${bad-name}"#, environment: [:]).get()
        #expect(defaults.expandedArguments(["NAME": "x"]) == ["/bin/echo", "zero", "set", "${bad-name}"])
        let argv0 = try ExecCommand.parse("@/bin/sh myname -c true", environment: [:]).get()
        #expect(argv0.path == "/bin/sh")
        #expect(argv0.arguments == ["myname", "-c", "true"])
        let searched = try ExecCommand.parse("sh -c true", environment: [:]).get()
        #expect(searched.path.hasSuffix("/sh"))
        // A bare name found nowhere stays as written, to fail with ENOENT when it starts (as systemd does);
        // a relative path is refused at once.
        #expect(try ExecCommand.parse("no-such-program-here", environment: [:]).get().path == "no-such-program-here")
        #expect(throws: ParseError.self) { try ExecCommand.parse("bin/no-such-program", environment: [:]).get() }
    }

    @Test func durations() {
        #expect(Values.duration("5") == .seconds(5))
        #expect(Values.duration("100ms") == .milliseconds(100))
        #expect(Values.duration("1min 30s") == .seconds(90))
        #expect(Values.duration("2h") == .seconds(7200))
        #expect(Values.duration("soon") == nil)
    }

    @Test func specifiersAndTemplates() {
        let name = UnitName("vm@guest\\x2d1.service")!
        #expect(name.prefix == "vm")
        #expect(name.instance == "guest\\x2d1")
        #expect(name.template?.full == "vm@.service")
        var warnings: [String] = []
        let expanded = Specifiers(unit: name).expand("%n %N %p %i %I %t %% %Q", warnings: &warnings, line: 3)
        #expect(expanded == "vm@guest\\x2d1.service vm@guest\\x2d1 vm guest\\x2d1 guest-1 /run % %Q")
        #expect(warnings == ["line 3: unknown specifier %Q, kept as is"])
        #expect(UnitName("bad name.service") == nil)
        #expect(UnitName("../etc.service") == nil || UnitName("../etc.service")?.full.contains("/") == false)
        #expect(UnitName("noservice") == nil)
    }

    @Test func serviceConfigDefaultsAndSettings() {
        let (config, warnings) = ServiceConfig.interpret(UnitFile.parse("""
            [Unit]
            Description=db
            StartLimitBurst=3
            [Service]
            Type=notify
            ExecStart=/bin/true
            Restart=on-failure
            RestartSec=250ms
            FileDescriptorStoreMax=7
            FileDescriptorStorePreserve=on-success
            TimeoutStopSec=infinity
            Unknown=1
            """), unit: UnitName("db.service")!)
        #expect(config.type == .notify)
        #expect(config.restart == .onFailure)
        #expect(config.restartDelay == .milliseconds(250))
        #expect(config.fdStoreMax == 7)
        #expect(config.fdStorePreserve == .onSuccess)
        #expect(config.notifyAccess == .main)
        #expect(config.startLimitBurst == 3)
        #expect(warnings == ["line 12: unknown setting Unknown= in [Service], ignored"])
        let (plain, _) = ServiceConfig.interpret(UnitFile.parse("[Service]\nExecStart=/bin/true\n"), unit: UnitName("p.service")!)
        #expect(plain.notifyAccess == .none)
        #expect(plain.fdStorePreserve == .restart)
    }
}

@Suite struct NotifyMessageTests {
    @Test func parsesAssignments() throws {
        let message = try NotifyMessage.parse(Array("READY=1\nSTATUS=a=b\n\nFDNAME=x".utf8)).get()
        #expect(message.isSet("READY"))
        #expect(message.value("STATUS") == "a=b")
        #expect(message.keys == ["READY", "STATUS", "FDNAME"])
    }

    @Test func refusals() {
        #expect(NotifyMessage.parse([]) == .failure(.empty))
        #expect(NotifyMessage.parse([0]) == .failure(.empty))
        #expect(NotifyMessage.parse(Array("READY".utf8)) == .failure(.nothingUsable("line without '=': 'READY', ignored")))
        #expect(NotifyMessage.parse(Array("=1".utf8)) == .failure(.nothingUsable("line without '=': '=1', ignored")))
        #expect(NotifyMessage.parse(Array("A=1\u{0}B=2".utf8)) == .failure(.containsNUL))
        #expect(NotifyMessage.parse(Array("A=1".utf8), truncated: true) == .failure(.tooLong))
    }

    /// As systemd: a bad line is skipped and the rest counts; CRLF and one trailing NUL are fine.
    @Test func badLinesAreSkippedNotFatal() throws {
        let message = try NotifyMessage.parse(Array("FDSTORE=1\r\nno assignment\r\nSTATUS=".utf8) + [0xFF, 0xFE] + Array("\nFDNAME=x\r\n".utf8) + [0]).get()
        #expect(message.assignments.map(\.key) == ["FDSTORE", "FDNAME"])
        #expect(message.value("FDNAME") == "x")
        #expect(message.isSet("FDSTORE"))
        #expect(message.skipped == ["line without '=': 'no assignment', ignored", "message is not valid UTF-8 (STATUS=…), line ignored"])
    }
}

@Suite struct FDStoreTests {
    @Test func limitDuplicatesOrderAndRemoval() throws {
        let store = FDStore(limit: 3)
        let a = try Memfd.create(name: "a")
        let copy = try a.duplicate()
        #expect(try store.add(a, name: "x") != .full)
        #expect(try store.add(copy, name: "x") == .duplicate)
        #expect(try store.add(try Memfd.create(name: "b"), name: "y") != .full)
        #expect(try store.add(try Memfd.create(name: "c"), name: "x") != .full)
        #expect(try store.add(try Memfd.create(name: "d"), name: "z") == .full)
        #expect(store.entries.map(\.name) == ["x", "y", "x"])
        #expect(store.remove(named: "x").count == 2)
        #expect(store.entries.map(\.name) == ["y"])
        #expect(store.truncate(to: 0).count == 1)
        #expect(store.isEmpty)
    }

    @Test func twoOpensOfOneFileAreNotDuplicates() throws {
        let store = FDStore(limit: 5)
        let memfd = try Memfd.create(name: "m")
        let reopened = OwnedFD(adopting: open("/proc/self/fd/\(memfd.rawValue)", O_RDWR | O_CLOEXEC))
        let copyOfFirst = try memfd.duplicate()
        let copyOfSecond = try reopened.duplicate()
        let third = OwnedFD(adopting: open("/proc/self/fd/\(memfd.rawValue)", O_RDWR | O_CLOEXEC))
        let copyOfThird = try third.duplicate()
        #expect(try store.add(memfd, name: "a") != .duplicate)
        #expect(try store.add(reopened, name: "b") != .duplicate)
        #expect(try store.add(third, name: "c") != .duplicate)
        #expect(store.count == 3)
        // Each open file is still recognised after the others of its inode are gone.
        store.remove(named: "a")
        #expect(try store.add(copyOfSecond, name: "b") == .duplicate)
        #expect(try store.add(copyOfFirst, name: "a") != .duplicate)
        store.remove(named: "b")
        #expect(try store.add(copyOfThird, name: "c") == .duplicate)
        #expect(store.entries.map(\.name) == ["a", "c"])
    }

    /// An entry owns its fd and its poll watch: letting the entry go ends both, wherever that happens.
    @Test func anEntryLetGoEndsItsWatchAndClosesItsFd() throws {
        let loop = try EventLoop()
        let store = FDStore(limit: 5)
        var fdNumbers: [CInt] = []
        for name in ["a", "b", "c"] {
            let fd = try UnixSocket.socket(.datagram)  // pollable, unlike a memfd
            fdNumbers.append(fd.rawValue)
            guard case .added(let id) = try store.add(fd, name: name) else { Issue.record("not added"); return }
            store.entry(id: id)?.pollWatch = try loop.ownedWatch(fdNumbers.last!, for: []) { _ in }
        }
        #expect(loop.watchedCount == 3)
        store.remove(named: "a")
        #expect(loop.watchedCount == 2)
        #expect(fcntl(fdNumbers[0], F_GETFD) == -1)
        store.truncate(to: 1)
        #expect(loop.watchedCount == 1)
        store.removeAll()
        #expect(loop.watchedCount == 0)
        #expect(fdNumbers.allSatisfy { fcntl($0, F_GETFD) == -1 })
    }

    @Test func names() {
        #expect(FDName.isValid(""))
        #expect(FDName.isValid("state-1 ok"))
        #expect(!FDName.isValid("a:b"))
        #expect(!FDName.isValid("tab\there"))
        #expect(!FDName.isValid(String(repeating: "n", count: 256)))
        #expect(!FDName.isValid("é"))
    }
}
