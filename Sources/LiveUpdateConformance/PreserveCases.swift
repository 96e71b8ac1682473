import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// §2.5 PRESERVE_FD and §5 what preserving does to a memfd.
enum PreserveCases {
    static let all: [ConformanceCase] = errors + types + freezing

    static let errors: [ConformanceCase] = [
        ConformanceCase("preserve-memfd", "§2.5", "a memfd is preserved",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("p-ok"))
            let memfd = try context.memfd("p")
            return session.preserveObserved(memfd.rawValue, token: 1)
        },
        ConformanceCase("preserve-any-token", "§3", "tokens 0 and 2^64-1 are valid",
                        expect: Expect.always("ok,ok")) { context in
            let session = try context.createSession(context.name("p-tok"))
            let a = try context.memfd("a")
            let b = try context.memfd("b")
            return session.preserveObserved(a.rawValue, token: 0) + "," + session.preserveObserved(b.rawValue, token: .max)
        },
        ConformanceCase("preserve-token-taken-eexist", "§2.5", "a token used in the session gives EEXIST",
                        expect: Expect.always("EEXIST")) { context in
            let session = try context.createSession(context.name("p-eexist"))
            let a = try context.memfd("a")
            let b = try context.memfd("b")
            _ = session.preserveObserved(a.rawValue, token: 5)
            return session.preserveObserved(b.rawValue, token: 5)
        },
        ConformanceCase("preserve-token-per-session", "§3", "one token may be used in two sessions",
                        expect: Expect.always("ok")) { context in
            let first = try context.createSession(context.name("p-ts1"))
            let second = try context.createSession(context.name("p-ts2"))
            let a = try context.memfd("a")
            let b = try context.memfd("b")
            _ = first.preserveObserved(a.rawValue, token: 9)
            return second.preserveObserved(b.rawValue, token: 9)
        },
        ConformanceCase("preserve-bad-fd-ebadf", "§2.5", "an fd that is not open gives EBADF",
                        expect: Expect.always("EBADF,EBADF")) { context in
            let session = try context.createSession(context.name("p-ebadf"))
            let closed = try context.memfd("gone").release()
            Glibc.close(closed)
            return session.preserveObserved(-1, token: 1) + "," + session.preserveObserved(closed, token: 2)
        },
        ConformanceCase("preserve-token-checked-before-fd", "§2.5", "a used token with a bad fd gives EEXIST",
                        expect: Expect.always("EEXIST")) { context in
            let session = try context.createSession(context.name("p-order"))
            let a = try context.memfd("a")
            _ = session.preserveObserved(a.rawValue, token: 1)
            return session.preserveObserved(-1, token: 1)
        },
        ConformanceCase("preserve-same-fd-same-token-eexist", "§3", "the same memfd under its own token again gives EEXIST",
                        expect: Expect.always("EEXIST")) { context in
            let session = try context.createSession(context.name("p-same"))
            let a = try context.memfd("a")
            _ = session.preserveObserved(a.rawValue, token: 1)
            return session.preserveObserved(a.rawValue, token: 1)
        },
        ConformanceCase("preserve-twice-two-tokens", "§3", "one memfd under two tokens: EBUSY from 7.1, accepted before",
                        expect: Expect.since(.v7_1, "EBUSY", before: "ok")) { context in
            let session = try context.createSession(context.name("p-twice"))
            let a = try context.memfd("a")
            _ = session.preserveObserved(a.rawValue, token: 1)
            return session.preserveObserved(a.rawValue, token: 2)
        },
        ConformanceCase("preserve-twice-two-sessions", "§3", "one memfd in two sessions: EBUSY from 7.1, accepted before",
                        expect: Expect.since(.v7_1, "EBUSY", before: "ok")) { context in
            let first = try context.createSession(context.name("p-2s1"))
            let second = try context.createSession(context.name("p-2s2"))
            let a = try context.memfd("a")
            _ = first.preserveObserved(a.rawValue, token: 1)
            return second.preserveObserved(a.rawValue, token: 1)
        },
        ConformanceCase("preserve-other-open-file-same-inode", "§2.5",
                        "another open file of the same memfd collides too (keyed by inode) from 7.1",
                        expect: Expect.since(.v7_1, "EBUSY", before: "ok")) { context in
            let session = try context.createSession(context.name("p-inode"))
            let a = try context.memfd("a")
            let reopened = open("/proc/self/fd/\(a.rawValue)", O_RDWR | O_CLOEXEC)
            guard reopened >= 0 else { throw ConformanceFailure("reopen memfd through /proc: errno \(errno)") }
            let other = OwnedFD(adopting: reopened)
            _ = session.preserveObserved(a.rawValue, token: 1)
            return session.preserveObserved(other.rawValue, token: 2)
        },
        ConformanceCase("preserve-after-session-closed", "§3", "closing a session unpreserves its files",
                        expect: Expect.always("ok")) { context in
            let a = try context.memfd("a")
            do {
                let first = try context.createSession(context.name("p-unp1"))
                _ = first.preserveObserved(a.rawValue, token: 1)
            }
            let second = try context.createSession(context.name("p-unp2"))
            return second.preserveObserved(a.rawValue, token: 1)
        },
        ConformanceCase("preserve-files-limit", "§2.5", "128 files per session before 7.2 (then ENOSPC); 500 fit from 7.2",
                        expect: Expect.since(.v7_2, "500 preserved", before: "128 preserved,ENOSPC")) { context in
            let session = try context.createSession(context.name("p-limit"))
            let wanted = context.level >= .v7_2 ? 500 : 140
            for index in 0..<wanted {
                let memfd = try context.memfd("f\(index)")
                let result = session.preserveObserved(memfd.rawValue, token: UInt64(index))
                if result != "ok" { return "\(index) preserved,\(result)" }
            }
            return "\(wanted) preserved"
        },
    ]

    static let types: [ConformanceCase] = [
        ConformanceCase("preserve-dev-null-enoent", "§2.5", "/dev/null cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-null"))
            let null = OwnedFD(adopting: open("/dev/null", O_RDWR | O_CLOEXEC))
            return session.preserveObserved(null.rawValue, token: 1)
        },
        ConformanceCase("preserve-pipe-enoent", "§2.5", "a pipe cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-pipe"))
            var fds: [CInt] = [-1, -1]
            guard ferry_pipe_cloexec(&fds) == 0 else { throw ConformanceFailure("pipe2: errno \(errno)") }
            let pipes = OwnedFDs(adopting: fds)
            return session.preserveObserved(pipes.rawValues[0], token: 1)
        },
        ConformanceCase("preserve-socket-enoent", "§2.5", "a socket cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-sock"))
            let socket = try step("socket") { try UnixSocket.socket(.datagram) }
            return session.preserveObserved(socket.rawValue, token: 1)
        },
        ConformanceCase("preserve-linked-file-enoent", "§5", "a file with a name (linked) cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-file"))
            let path = "/tmp/ferry-conformance-\(context.runID)"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ConformanceFailure("create \(path): errno \(errno)") }
            let file = OwnedFD(adopting: fd)
            defer { unlink(path) }
            return session.preserveObserved(file.rawValue, token: 1)
        },
        ConformanceCase("preserve-hugetlb-memfd-enoent", "§5", "a hugetlb memfd cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-huge"))
            let memfd = try step("memfd_create(MFD_HUGETLB)") { try Memfd.create(name: "huge", hugeTLB: true) }
            return session.preserveObserved(memfd.rawValue, token: 1)
        },
        ConformanceCase("preserve-session-fd-enoent", "§2.5", "a session fd cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-sess"))
            let other = try context.createSession(context.name("t-sess2"))
            return session.preserveObserved(other.descriptor.rawValue, token: 1)
        },
        ConformanceCase("preserve-device-fd-enoent", "§2.5", "the device fd cannot be preserved: ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            let session = try context.createSession(context.name("t-dev"))
            return session.preserveObserved(context.deviceFD, token: 1)
        },
        ConformanceCase("preserve-empty-memfd", "§5", "a memfd of size 0 is preserved",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("t-empty"))
            let memfd = try context.memfd("empty", [])
            return session.preserveObserved(memfd.rawValue, token: 1)
        },
        ConformanceCase("preserve-sealed-memfd", "§5", "a memfd with all six known seals is preserved",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("t-sealed"))
            let memfd = try context.memfd("sealed")
            try step("F_ADD_SEALS") {
                try Memfd.addSeals([.shrink, .grow, .write, .futureWrite, .exec, .seal], to: memfd.borrowed)
            }
            return session.preserveObserved(memfd.rawValue, token: 1)
        },
    ]

    static let freezing: [ConformanceCase] = [
        ConformanceCase("preserved-write-inside-size", "§5", "writes inside the size stay allowed after preserve",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("z-write"))
            let memfd = try context.memfd("w", [UInt8](repeating: 1, count: 4096))
            _ = session.preserveObserved(memfd.rawValue, token: 1)
            return observing { try FileIO.writeAll(memfd.borrowed, [9, 9, 9], at: 100) }
        },
        ConformanceCase("preserved-truncate-same-size", "§5", "truncating to the same size stays allowed",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("z-same"))
            let memfd = try context.memfd("s", [UInt8](repeating: 1, count: 4096))
            _ = session.preserveObserved(memfd.rawValue, token: 1)
            return observing { try FileIO.truncate(memfd.borrowed, to: 4096) }
        },
        ConformanceCase("preserved-size-frozen", "§5", "changing a preserved memfd's size fails with EPERM",
                        expect: Expect.always("EPERM,EPERM"),
                        emulatorDeviation: .init(
                            observed: "ok,ok",
                            reason: "a process cannot freeze another process's memfd size; the emulator reports the change at simulated kexec and carries the preserved size")) { context in
            let session = try context.createSession(context.name("z-frozen"))
            let memfd = try context.memfd("f", [UInt8](repeating: 1, count: 4096))
            _ = session.preserveObserved(memfd.rawValue, token: 1)
            let grow = observing { try FileIO.truncate(memfd.borrowed, to: 8192) }
            let shrink = observing { try FileIO.truncate(memfd.borrowed, to: 100) }
            return grow + "," + shrink
        },
        ConformanceCase("preserved-write-seal-ebusy", "§5", "F_SEAL_WRITE on a preserved memfd fails with EBUSY (pinned pages; seen on 7.2.13)",
                        expect: Expect.always("EBUSY,ok"),
                        emulatorDeviation: .init(
                            observed: "ok,ok",
                            reason: "the emulator does not pin the caller's pages, so the write seal succeeds; Ferry never write-seals a preserved memfd")) { context in
            let session = try context.createSession(context.name("z-seal"))
            let memfd = try context.memfd("s", [UInt8](repeating: 1, count: 4096))
            _ = session.preserveObserved(memfd.rawValue, token: 1)
            let write = observing { try Memfd.addSeals([.write], to: memfd.borrowed) }
            let grow = observing { try Memfd.addSeals([.grow], to: memfd.borrowed) }
            return write + "," + grow
        },
        ConformanceCase("unpreserved-size-free-again", "§3", "closing the session unfreezes the memfd",
                        expect: Expect.always("ok")) { context in
            let memfd = try context.memfd("u", [UInt8](repeating: 1, count: 4096))
            do {
                let session = try context.createSession(context.name("z-unfreeze"))
                _ = session.preserveObserved(memfd.rawValue, token: 1)
            }
            return observing { try FileIO.truncate(memfd.borrowed, to: 8192) }
        },
    ]
}
