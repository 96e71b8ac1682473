import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// §2.6 RETRIEVE_FD, §2.7 FINISH, §3 "at kexec" and §5 "what comes back": prepared before the kexec,
/// checked after it. Each check has a session of its own, so checks cannot disturb each other.
enum KexecCases {
    static let all: [ConformanceCase] = [setup, setupClosed] + checks

    /// The sessions stage 2 retrieves; each holds the same five files (see `Fixture`).
    static let carriedSessions = [
        "restore", "name", "seals", "empty", "closedfd", "twice", "unknown", "once", "reclose", "inpreserve",
        "finish", "finish2", "reserved", "getname", "samename", "rebusy", "ident", "implicit",
    ]

    /// What every carried session holds.
    enum Fixture {
        static let bigSize = 65_636
        static let bigOffset: Int64 = 4242
        static let memfdName = "ferry-conformance-data"
        static func bigContents(_ session: String) -> [UInt8] {
            let seed = session.utf8.reduce(0) { $0 &+ $1 }
            return (0..<bigSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
        }
        static let sealedContents = [UInt8](repeating: 0x5A, count: 100)
        static let sealedSeals: Memfd.Seals = [.shrink, .grow, .write]
        static let closedContents = Array("closed after preserve".utf8)
        static let unretrievedContents = Array("never retrieved".utf8)
    }

    static let setup = ConformanceCase(
        "kexec-prepare", "§3", "prepare the sessions carried across the kexec", stage: .beforeKexec,
        expect: Expect.always("ok")
    ) { context in
        for suffix in carriedSessions {
            let session = try context.createSession(ConformanceContext.carriedName(suffix))
            let big = try context.memfd(Fixture.memfdName, Fixture.bigContents(suffix))
            try step("lseek") { try FileIO.seek(big.borrowed, to: Fixture.bigOffset) }
            let sealed = try context.memfd("sealed", Fixture.sealedContents)
            try step("F_ADD_SEALS") { try Memfd.addSeals(Fixture.sealedSeals, to: sealed.borrowed) }
            let empty = try context.memfd("empty", [])
            let unretrieved = try context.memfd("unretrieved", Fixture.unretrievedContents)
            let closed = try context.memfd("closed", Fixture.closedContents)
            for (token, fd) in [(1, big.rawValue), (2, sealed.rawValue), (3, empty.rawValue), (4, unretrieved.rawValue),
                                (5, closed.rawValue)] {
                let result = session.preserveObserved(fd, token: UInt64(token))
                if result != "ok" { throw ConformanceFailure("preserve token \(token) in '\(session.name)': \(result)") }
            }
            context.keepUntilKexec(session)
        }
        return "ok"
    }

    static let setupClosed = ConformanceCase(
        "kexec-prepare-closed", "§3", "a session closed before the kexec", stage: .beforeKexec,
        expect: Expect.always("ok")
    ) { context in
        let session = try context.createSession(ConformanceContext.carriedName("closed"))
        let memfd = try context.memfd("closed-session")
        return session.preserveObserved(memfd.rawValue, token: 1)
    }

    static func retrieve(_ context: ConformanceContext, _ suffix: String) throws -> LiveUpdateSession {
        try context.retrieveSession(ConformanceContext.carriedName(suffix))
    }

    static func take(_ session: borrowing LiveUpdateSession, _ token: UInt64) throws -> OwnedFD {
        do throws(LiveUpdateError) { return try session.retrieve(token: token) } catch {
            throw ConformanceFailure("\(error)")
        }
    }

    static let checks: [ConformanceCase] = [
        ConformanceCase("kexec-closed-session-gone", "§3", "a session closed before the kexec is gone: ENOENT",
                        stage: .afterKexec, expect: Expect.always("ENOENT")) { context in
            observing { _ = try context.retrieve(ConformanceContext.carriedName("closed")) }
        },
        ConformanceCase("kexec-memfd-restored", "§5", "size, contents, offset and open flags come back; fd is close-on-exec",
                        stage: .afterKexec,
                        expect: Expect.always("size=65636,offset=4242,contents-match,rdwr-largefile,cloexec")) { context in
            let session = try retrieve(context, "restore")
            let fd = try take(session, 1)
            let size = try step("fstat") { try FileIO.size(of: fd.borrowed) }
            let offset = try step("lseek") { try FileIO.offset(of: fd.borrowed) }
            let contents = try step("pread") { try FileIO.readAll(fd.borrowed) }
            let flags = try step("F_GETFL") { try FileIO.statusFlags(of: fd.borrowed) }
            let largeFile: CInt = 0o100000
            return "size=\(size),offset=\(offset),"
                + (contents == Fixture.bigContents("restore") ? "contents-match" : "contents-differ") + ","
                + (flags & O_ACCMODE == O_RDWR && flags & largeFile != 0 ? "rdwr-largefile" : "flags=\(flags)") + ","
                + (fd.borrowed.isCloseOnExec ? "cloexec" : "no-cloexec")
        },
        ConformanceCase("kexec-memfd-name-lost", "§5", "the memfd's name does not come back",
                        stage: .afterKexec, expect: Expect.always("name-lost")) { context in
            let session = try retrieve(context, "name")
            let fd = try take(session, 1)
            let link = try step("readlink") { try FileIdentity.linkText(fd.borrowed) }
            return link.contains(Fixture.memfdName) ? "name-kept" : "name-lost"
        },
        ConformanceCase("kexec-memfd-seals", "§5", "seals come back from 7.1; before, only F_SEAL_SEAL",
                        stage: .afterKexec, expect: Expect.since(.v7_1, "seals=0xe,contents-match", before: "seals=0x1,contents-match")) { context in
            let session = try retrieve(context, "seals")
            let fd = try take(session, 2)
            let seals = try step("F_GET_SEALS") { try Memfd.seals(of: fd.borrowed) }
            let contents = try step("pread") { try FileIO.readAll(fd.borrowed) }
            return "seals=0x\(String(seals.rawValue, radix: 16)),"
                + (contents == Fixture.sealedContents ? "contents-match" : "contents-differ")
        },
        ConformanceCase("kexec-empty-memfd", "§5", "a memfd of size 0 comes back empty",
                        stage: .afterKexec, expect: Expect.always("size=0")) { context in
            let session = try retrieve(context, "empty")
            let fd = try take(session, 3)
            return "size=\(try step("fstat") { try FileIO.size(of: fd.borrowed) })"
        },
        ConformanceCase("kexec-caller-closed-fd", "§2.5", "a memfd whose fd was closed after preserve still comes back",
                        stage: .afterKexec, expect: Expect.always("contents-match")) { context in
            let session = try retrieve(context, "closedfd")
            let fd = try take(session, 5)
            return try step("pread") { try FileIO.readAll(fd.borrowed) } == Fixture.closedContents
                ? "contents-match" : "contents-differ"
        },
        ConformanceCase("retrieve-fd-twice-same-file", "§2.6", "retrieving a token twice gives the same open file",
                        stage: .afterKexec, expect: Expect.always("same-open-file")) { context in
            let session = try retrieve(context, "twice")
            let first = try take(session, 1)
            let second = try take(session, 1)
            return try step("kcmp") { try FileIdentity.sameOpenFile(first.borrowed, second.borrowed) }
                ? "same-open-file" : "different-files"
        },
        ConformanceCase("retrieve-fd-unknown-token-enoent", "§2.6", "an unknown token gives ENOENT",
                        stage: .afterKexec, expect: Expect.always("ENOENT")) { context in
            let session = try retrieve(context, "unknown")
            return observing { _ = try session.retrieve(token: 99) }
        },
        ConformanceCase("retrieve-session-twice-einval", "§2.4", "a retrieved session still open cannot be retrieved again: EINVAL",
                        stage: .afterKexec, expect: Expect.always("EINVAL")) { context in
            let session = try retrieve(context, "once")
            _ = session
            return observing { _ = try context.retrieve(ConformanceContext.carriedName("once")) }
        },
        ConformanceCase("retrieve-session-after-close-enoent", "§2.4", "a retrieved session is gone once closed: ENOENT",
                        stage: .afterKexec, expect: Expect.always("ENOENT")) { context in
            do { _ = try retrieve(context, "reclose") }
            return observing { _ = try context.retrieve(ConformanceContext.carriedName("reclose")) }
        },
        ConformanceCase("incoming-preserve-einval", "§2.2", "PRESERVE_FD on an incoming session gives EINVAL",
                        stage: .afterKexec, expect: Expect.always("EINVAL")) { context in
            let session = try retrieve(context, "inpreserve")
            let memfd = try context.memfd("late")
            return session.preserveObserved(memfd.rawValue, token: 77)
        },
        ConformanceCase("finish-discards-unretrieved", "§2.7", "FINISH discards files not retrieved; retrieved ones stay valid",
                        stage: .afterKexec, expect: Expect.always("ok,ENOENT,ENOENT,readable")) { context in
            let session = try retrieve(context, "finish")
            let kept = try take(session, 1)
            let finish = observing { try session.finish() }
            let unretrieved = observing { _ = try session.retrieve(token: 4) }
            let again = observing { _ = try session.retrieve(token: 1) }
            let readable = (try? FileIO.readAll(kept.borrowed)) == Fixture.bigContents("finish") ? "readable" : "unreadable"
            return [finish, unretrieved, again, readable].joined(separator: ",")
        },
        ConformanceCase("finish-twice", "§2.7", "a second FINISH returns 0",
                        stage: .afterKexec, expect: Expect.always("ok,ok")) { context in
            let session = try retrieve(context, "finish2")
            return observing { try session.finish() } + "," + observing { try session.finish() }
        },
        ConformanceCase("finish-reserved", "§2.7", "FINISH with reserved ≠ 0: EINVAL from 7.2.13 (the spec says 7.3), ignored before",
                        stage: .afterKexec, expect: Expect.since(.v7_2, "EINVAL", before: "ok")) { context in
            let session = try retrieve(context, "reserved")
            var buffer = RequestBuffer(for: .finish)
            buffer.reserved = 1
            return session.raw(LiveUpdateRequest.finish.rawValue, buffer)
        },
        ConformanceCase("get-name-incoming", "§2.8", "GET_NAME works on an incoming session from 7.2",
                        stage: .afterKexec, expect: Expect.since(.v7_2, "name-matches", before: "EINVAL")) { context in
            let session = try retrieve(context, "getname")
            var argument: RequestBuffer? = RequestBuffer(for: .getName)
            if let code = session.rawIoctl(LiveUpdateRequest.getName.rawValue, &argument) { return observe(code) }
            return argument!.name == Array(ConformanceContext.carriedName("getname").utf8) ? "name-matches" : "name-differs"
        },
        ConformanceCase("create-name-of-incoming", "§2.3", "an outgoing session may take the name of an incoming one",
                        stage: .afterKexec, expect: Expect.always("ok")) { context in
            observing { _ = try context.create(ConformanceContext.carriedName("samename")) }
        },
        ConformanceCase("preserve-retrieved-before-finish", "§2.7",
                        "a retrieved memfd can be preserved again only after FINISH (EBUSY before, from 7.1)",
                        stage: .afterKexec, expect: Expect.since(.v7_1, "EBUSY,ok", before: "ok,ok")) { context in
            let incoming = try retrieve(context, "rebusy")
            let fd = try take(incoming, 1)
            let outgoing = try context.createSession(context.name("rebusy"))
            let before = outgoing.preserveObserved(fd.rawValue, token: 1)
            _ = observing { try incoming.finish() }
            return before + "," + outgoing.preserveObserved(fd.rawValue, token: 2)
        },
        ConformanceCase("incoming-session-identity", "§4", "a retrieved session fd is recognised and close-on-exec",
                        stage: .afterKexec, expect: Expect.always("session,name-matches,cloexec")) { context in
            let session = try retrieve(context, "ident")
            guard let identity = SessionIdentity.of(session.descriptor.borrowed) else { return "not-a-session" }
            return "session," + (identity.name == ConformanceContext.carriedName("ident") ? "name-matches" : "name-differs")
                + "," + (session.descriptor.borrowed.isCloseOnExec ? "cloexec" : "no-cloexec")
        },
        ConformanceCase("close-finishes-incoming", "§3", "closing a retrieved session finishes it; retrieved files stay valid",
                        stage: .afterKexec, expect: Expect.always("readable,ENOENT")) { context in
            let kept: OwnedFD
            do {
                let session = try retrieve(context, "implicit")
                kept = try take(session, 1)
            }
            let readable = (try? FileIO.readAll(kept.borrowed)) == Fixture.bigContents("implicit") ? "readable" : "unreadable"
            return readable + "," + observing {
                _ = try context.retrieve(ConformanceContext.carriedName("implicit"))
            }
        },
    ]
}
