import CFerry
import FerrySystem
import LiveUpdate
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// §1 the device and §2.1 its ioctl dispatch.
enum DeviceCases {
    static let all: [ConformanceCase] = [
        ConformanceCase("device-second-open-ebusy", "§1", "a second open of the device fails with EBUSY",
                        expect: Expect.always("EBUSY")) { context in
            switch context.backend.openDevice() {
            case .success: return "ok"
            case .failure(let code): return observe(code)
            }
        },
        ConformanceCase("device-close-keeps-sessions", "§1",
                        "closing the device leaves sessions working; it can be opened again",
                        expect: Expect.always("ok")) { context in
            let session = try context.createSession(context.name("device-close"))
            let first = try context.memfd("a")
            try context.reopenDevice()
            let second = try context.memfd("b")
            return [session.preserveObserved(first.rawValue, token: 1),
                    session.preserveObserved(second.rawValue, token: 2)].joined(separator: ",") == "ok,ok" ? "ok" : "failed"
        },
        ConformanceCase("device-shared-by-dup", "§1", "a dup of the device fd works like the original",
                        expect: Expect.always("ok")) { context in
            let copy = try context.duplicateDevice()
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("dup").utf8)
            var argument: RequestBuffer? = buffer
            let code = context.backend.ioctl(copy.rawValue, request: LiveUpdateRequest.createSession.rawValue,
                                             argument: &argument)
            if code == nil { Glibc.close(argument!.fd) }
            return observe(code)
        },
        ConformanceCase("device-nr-out-of-range-einval", "§2.1", "device ioctl nr 2 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            observe(context.deviceIoctl(LiveUpdateRequest.encode(type: 0xBA, number: 0x02),
                                        RequestBuffer(for: .createSession)).0)
        },
        ConformanceCase("device-session-request-einval", "§2.1", "PRESERVE_FD on the device gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            observe(context.deviceIoctl(LiveUpdateRequest.preserveFD.rawValue, RequestBuffer(for: .preserveFD)).0)
        },
        ConformanceCase("device-null-argument-efault", "§2.1", "CREATE_SESSION with a NULL argument gives EFAULT",
                        expect: Expect.always("EFAULT")) { context in
            observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, nil).0)
        },
        ConformanceCase("device-wrong-type-enotty", "§2.1", "nr 0 with type 0xBB gives ENOTTY",
                        expect: Expect.always("ENOTTY")) { context in
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("type").utf8)
            return observe(context.deviceIoctl(LiveUpdateRequest.encode(type: 0xBB, number: 0x00), buffer).0)
        },
        ConformanceCase("device-size-bits-enotty", "§2.1", "CREATE_SESSION with _IOW size bits gives ENOTTY",
                        expect: Expect.always("ENOTTY")) { context in
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("iow").utf8)
            return observe(context.deviceIoctl(0x4048_BA00, buffer).0)
        },
        ConformanceCase("device-size-too-small-einval", "§2.1", "CREATE_SESSION with size 71 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("small").utf8)
            buffer.size = 71
            return observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, buffer).0)
        },
        ConformanceCase("device-size-zero-einval", "§2.1", "CREATE_SESSION with size 0 gives EINVAL",
                        expect: Expect.always("EINVAL")) { context in
            var buffer = RequestBuffer(for: .createSession)
            buffer.name = Array(context.name("zero").utf8)
            buffer.size = 0
            return observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, buffer).0)
        },
        ConformanceCase("device-nonzero-tail-e2big", "§2.1", "size 80 with a non-zero byte past 72 gives E2BIG",
                        expect: Expect.always("E2BIG")) { context in
            var buffer = RequestBuffer(for: .createSession, extra: 8)
            buffer.name = Array(context.name("tail").utf8)
            buffer.bytes[75] = 1
            return observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, buffer).0)
        },
        ConformanceCase("device-zero-tail-accepted", "§2.1", "size 80 with a zero tail is accepted",
                        expect: Expect.always("ok")) { context in
            var buffer = RequestBuffer(for: .createSession, extra: 8)
            buffer.name = Array(context.name("zerotail").utf8)
            return observe(context.deviceIoctl(LiveUpdateRequest.createSession.rawValue, buffer).0)
        },
    ]
}
