import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// §2.2 session dispatch, §2.3 CREATE_SESSION, §2.4 RETRIEVE_SESSION, §2.8 GET_NAME, §3 names, §4 identity.
enum SessionCases {
    static let all: [ConformanceCase] = dispatch + create + retrieve + identity

    static let dispatch: [ConformanceCase] = [
        ConformanceCase("session-device-request-einval", "§2.2", "CREATE_SESSION on a session fd gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("s-dev"))
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("s-dev2").utf8)
            return session.raw(LiveUpdateRequest.createSession.rawValue, buffer)
        },
        ConformanceCase("session-nr-above-range-einval", "§2.2", "session ioctl nr 0x44 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("s-44"))
            return session.raw(LiveUpdateRequest.encode(type: 0xBA, number: 0x44), RequestBuffer(count: 80))
        },
        ConformanceCase("session-wrong-type-enotty", "§2.2", "nr 0x40 with type 0xBB gives ENOTTY",
                        expect: Expect.always("ENOTTY")) { context in
            let session = try context.createSession(context.name("s-type"))
            let memfd = try context.memfd("t")
            var buffer = RequestBuffer(for: .preserveFD)
            buffer.fd = memfd.rawValue
            return session.raw(LiveUpdateRequest.encode(type: 0xBB, number: 0x40), buffer)
        },
        ConformanceCase("session-null-argument-efault", "§2.2", "PRESERVE_FD with a NULL argument gives EFAULT",
                        expect: Expect.always("EFAULT")) { context in
            let session = try context.createSession(context.name("s-null"))
            return session.raw(LiveUpdateRequest.preserveFD.rawValue, nil)
        },
        ConformanceCase("session-retrieve-fd-on-outgoing-einval", "§2.2", "RETRIEVE_FD on an outgoing session gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("s-dir1"))
            let memfd = try context.memfd("d")
            _ = session.preserveObserved(memfd.rawValue, token: 1)
            var buffer = RequestBuffer(for: .retrieveFD)
            buffer.token = 1
            return session.raw(LiveUpdateRequest.retrieveFD.rawValue, buffer)
        },
        ConformanceCase("session-finish-on-outgoing-einval", "§2.2", "FINISH on an outgoing session gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("s-dir2"))
            return session.raw(LiveUpdateRequest.finish.rawValue, RequestBuffer(for: .finish))
        },
        ConformanceCase("session-size-too-small-einval", "§2.2", "PRESERVE_FD with size 15 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("s-small"))
            let memfd = try context.memfd("s")
            var buffer = RequestBuffer(for: .preserveFD)
            buffer.fd = memfd.rawValue
            buffer.size = 15
            return session.raw(LiveUpdateRequest.preserveFD.rawValue, buffer)
        },
        ConformanceCase("session-nonzero-tail-e2big", "§2.2", "PRESERVE_FD size 24 with a non-zero tail gives E2BIG",
                        expect: Expect.always("E2BIG")) { context in
            let session = try context.createSession(context.name("s-tail"))
            let memfd = try context.memfd("s")
            var buffer = RequestBuffer(for: .preserveFD, extra: 8)
            buffer.fd = memfd.rawValue
            buffer.bytes[20] = 7
            return session.raw(LiveUpdateRequest.preserveFD.rawValue, buffer)
        },
        ConformanceCase("session-zero-tail-accepted", "§2.2", "PRESERVE_FD size 24 with a zero tail is accepted",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("s-ztail"))
            let memfd = try context.memfd("s")
            var buffer = RequestBuffer(for: .preserveFD, extra: 8)
            buffer.fd = memfd.rawValue
            return session.raw(LiveUpdateRequest.preserveFD.rawValue, buffer)
        },
        ConformanceCase("get-name-outgoing", "§2.8", "GET_NAME on an outgoing session (EINVAL before 7.2)",
                        expect: Expect.since(.v7_2, "name-matches", before: "EINVAL")) { context in
            let name = context.name("getname")
            let session = try context.createSession(name)
            var argument: RequestBuffer? = RequestBuffer(for: .getName)
            if let code = session.rawIoctl(LiveUpdateRequest.getName.rawValue, &argument) { return observe(code) }
            return argument!.name == Array(name.utf8) ? "name-matches" : "name-differs"
        },
        ConformanceCase("get-name-size-71-einval", "§2.2", "GET_NAME with size 71 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("gn71"))
            var buffer = RequestBuffer(for: .getName)
            buffer.size = 71
            return session.raw(LiveUpdateRequest.getName.rawValue, buffer)
        },
        ConformanceCase("get-name-reserved-einval", "§2.8", "GET_NAME with reserved ≠ 0 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            let session = try context.createSession(context.name("gnres"))
            var buffer = RequestBuffer(for: .getName)
            buffer.reserved = 1
            return session.raw(LiveUpdateRequest.getName.rawValue, buffer)
        },
    ]

    static let create: [ConformanceCase] = [
        ConformanceCase("create-fd-cloexec-rdwr", "§2.3", "a new session fd is close-on-exec and O_RDWR",
                        expect: Expect.always("cloexec,rdwr")) { context in
            let session = try context.createSession(context.name("flags"))
            let flags = try step("F_GETFL") { try FileIO.statusFlags(of: session.descriptor.borrowed) }
            return (session.descriptor.borrowed.isCloseOnExec ? "cloexec" : "no-cloexec")
                + (flags & O_ACCMODE == O_RDWR ? ",rdwr" : ",not-rdwr")
        },
        ConformanceCase("create-empty-name", "§2.3", "an empty name: EINVAL from 7.2, accepted before",
                        expect: Expect.since(.v7_2, "EINVAL", before: "ok")) { context in
            observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, RequestBuffer(for: .createSession)).0)
        },
        ConformanceCase("create-unterminated-name", "§2.3", "64 bytes without NUL: EINVAL from 7.2, cut to 63 before",
                        expect: Expect.since(.v7_2, "EINVAL", before: "ok")) { context in
            var buffer = RequestBuffer(for: .createSession)
            let stem = Array(context.name("u").utf8)
            buffer.name = stem + [UInt8](repeating: UInt8(ascii: "x"), count: 64 - stem.count)
            return observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, buffer).0)
        },
        ConformanceCase("create-duplicate-eexist", "§2.3", "a second outgoing session of one name gives EEXIST",
                        expect: Expect.always("EEXIST")) { context in
            let name = context.name("dup")
            let first = try context.createSession(name)
            _ = first
            return observing { _ = try context.create(name) }
        },
        ConformanceCase("create-63-byte-name", "§3", "a 63-byte name works; GET_NAME gives it back from 7.2",
                        expect: Expect.since(.v7_2, "ok,name-matches", before: "ok,EINVAL")) { context in
            let stem = context.name("63-")
            let name = stem + String(repeating: "n", count: 63 - stem.utf8.count)
            let session = try context.createSession(name)
            var argument: RequestBuffer? = RequestBuffer(for: .getName)
            if let code = session.rawIoctl(LiveUpdateRequest.getName.rawValue, &argument) { return "ok," + observe(code) }
            return argument!.name == Array(name.utf8) ? "ok,name-matches" : "ok,name-differs"
        },
        ConformanceCase("create-any-bytes-name", "§3", "names may hold '/', spaces, UTF-8 and control bytes",
                        expect: Expect.always("ok,name-matches")) { context in
            let name = context.name("a/b c\u{e9}\u{1}")
            let session = try context.createSession(name)
            guard let identity = SessionIdentity.of(session.descriptor.borrowed) else { return "ok,not-a-session" }
            return identity.name == name ? "ok,name-matches" : "ok,name-\(identity.name ?? "unreadable")"
        },
        ConformanceCase("create-name-reusable-after-close", "§3", "closing an outgoing session frees its name",
                        expect: Expect.always("ok")) { context in
            let name = context.name("reuse")
            _ = try context.createSession(name)
            return observing { _ = try context.create(name) }
        },
        ConformanceCase("create-session-limit", "§2.3", "about 819 sessions before 7.2 (then ENOMEM); 2000 fit from 7.2",
                        expect: Expect.since(.v7_2, "2000 created", before: "819 created,ENOMEM")) { context in
            let wanted = context.level >= .v7_2 ? 2000 : 900
            var fds = OwnedFDs()
            for index in 0..<wanted {
                var buffer = RequestBuffer(for: .createSession)
                buffer.name = Array(context.name("many-\(index)").utf8)
                var argument: RequestBuffer? = buffer
                if let code = context.backend.ioctl(context.deviceFD, request: LiveUpdateRequest.createSession.rawValue,
                                                    argument: &argument) {
                    return "\(index) created,\(code.symbolicName)"
                }
                fds.append(OwnedFD(adopting: argument!.fd))
            }
            return "\(wanted) created"
        },
    ]

    static let retrieve: [ConformanceCase] = [
        ConformanceCase("retrieve-unknown-enoent", "§2.4", "retrieving an unknown name gives ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            observing { _ = try context.retrieve(context.name("nothing")) }
        },
        ConformanceCase("retrieve-outgoing-name-enoent", "§2.4", "an outgoing session cannot be retrieved (separate lists)",
                        expect: Expect.always("ENOENT")) { context in
            let name = context.name("out")
            let session = try context.createSession(name)
            _ = session
            return observing { _ = try context.retrieve(name) }
        },
        ConformanceCase("retrieve-empty-name", "§2.4", "retrieving an empty name gives ENOENT",
                        expect: Expect.always("ENOENT")) { context in
            observe(context.deviceIoctl(LiveUpdateRequest.retrieveSession.rawValue, RequestBuffer(for: .retrieveSession)).0)
        },
        ConformanceCase("retrieve-unterminated-name", "§2.4", "retrieving 64 bytes without NUL gives ENOENT (7.2.13 does not validate here)",
                        expect: Expect.always("ENOENT")) { context in
            var buffer = RequestBuffer(for: .retrieveSession)
            buffer.name = [UInt8](repeating: UInt8(ascii: "r"), count: 64)
            return observe(context.deviceIoctl(LiveUpdateRequest.retrieveSession.rawValue, buffer).0)
        },
    ]

    static let identity: [ConformanceCase] = [
        ConformanceCase("identity-session-fd", "§4", "a session fd is recognised, with its name, without side effects",
                        expect: Expect.always("session,name-matches,ok")) { context in
            let name = context.name("ident")
            let session = try context.createSession(name)
            let memfd = try context.memfd("i")
            guard let identity = SessionIdentity.of(session.descriptor.borrowed) else { return "not-a-session" }
            // The check must not disturb the session: preserving still works afterwards.
            return "session," + (identity.name == name ? "name-matches" : "name-differs") + ","
                + session.preserveObserved(memfd.rawValue, token: 1)
        },
        ConformanceCase("identity-other-fds", "§4", "memfds, the device, pipes and /dev/null are not sessions",
                        expect: Expect.always("none")) { context in
            let memfd = try context.memfd("o")
            var pipeFDs: [CInt] = [-1, -1]
            _ = ferry_pipe_cloexec(&pipeFDs)
            let pipes = OwnedFDs(adopting: pipeFDs)
            let null = OwnedFD(adopting: open("/dev/null", O_RDONLY | O_CLOEXEC))
            let found = [memfd.rawValue, context.deviceFD, pipes.rawValues[0], null.rawValue]
                .filter { SessionIdentity.of(FileDescriptor(rawValue: $0)) != nil }
            return found.isEmpty ? "none" : "found \(found.count)"
        },
        ConformanceCase("identity-name-lengths", "§4", "which name lengths the /proc link text can show",
                        expect: Expect.since(.v7_2, "38:name,39:name,40:name,50:name,62:name,63:name",
                                             before: "38:name,39:unreadable,40:unreadable,50:unreadable,62:unreadable,63:unreadable")) { context in
            var seen: [String] = []
            for length in [38, 39, 40, 50, 62, 63] {
                let stem = context.name("len\(length)-")
                let name = stem + String(repeating: "k", count: length - stem.utf8.count)
                let session = try context.createSession(name)
                let identity = SessionIdentity.of(session.descriptor.borrowed)
                seen.append("\(length):" + (identity == nil ? "none" : identity!.name == name ? "name" : identity!.name == nil ? "unreadable" : "other"))
            }
            return seen.joined(separator: ",")
        },
        ConformanceCase("identity-long-name", "§4", "a 45-byte name: the link text shows it on 7.2.13 (not before 7.2, per the spec)",
                        expect: Expect.since(.v7_2, "session,readable,name-matches", before: "session,unreadable,ENAMETOOLONG")) { context in
            let stem = context.name("long-")
            let name = stem + String(repeating: "l", count: 45 - stem.utf8.count)
            let session = try context.createSession(name)
            guard let identity = SessionIdentity.of(session.descriptor.borrowed) else { return "not-a-session" }
            let fromKernel: String
            do throws(LiveUpdateError) {
                fromKernel = try session.kernelName() == name ? "name-matches" : "name-differs"
            } catch {
                fromKernel = error.errno?.symbolicName ?? "\(error.kind)"
            }
            return "session," + (identity.name == nil ? "unreadable" : "readable") + "," + fromKernel
        },
    ]
}
