import CFerry
import LiveUpdate
import Testing

/// The uAPI as kernel-luo.md §2 gives it: numbers, sizes and offsets must match exactly.
@Suite struct UAPITests {
    @Test func requestNumbers() {
        #expect(LiveUpdateRequest.createSession.rawValue == 0xBA00)
        #expect(LiveUpdateRequest.retrieveSession.rawValue == 0xBA01)
        #expect(LiveUpdateRequest.preserveFD.rawValue == 0xBA40)
        #expect(LiveUpdateRequest.retrieveFD.rawValue == 0xBA41)
        #expect(LiveUpdateRequest.finish.rawValue == 0xBA42)
        #expect(LiveUpdateRequest.getName.rawValue == 0xBA43)
        #expect(LiveUpdateRequest.encode(type: 0xBA, number: 0x43) == 0xBA43)
        #expect(!LiveUpdateRequest.createSession.isSessionRequest)
        #expect(LiveUpdateRequest.finish.isSessionRequest)
    }

    @Test func sessionRequestLayout() {
        #expect(MemoryLayout<ferry_luo_session_request>.size == 72)
        #expect(MemoryLayout<ferry_luo_session_request>.alignment == 4)
        #expect(MemoryLayout<ferry_luo_session_request>.offset(of: \.size) == 0)
        #expect(MemoryLayout<ferry_luo_session_request>.offset(of: \.fd) == 4)
        #expect(MemoryLayout<ferry_luo_session_request>.offset(of: \.name) == 8)
    }

    @Test func fdRequestLayout() {
        #expect(MemoryLayout<ferry_luo_fd_request>.size == 16)
        #expect(MemoryLayout<ferry_luo_fd_request>.alignment == 8)
        #expect(MemoryLayout<ferry_luo_fd_request>.offset(of: \.fd) == 4)
        #expect(MemoryLayout<ferry_luo_fd_request>.offset(of: \.token) == 8)
    }

    @Test func finishRequestLayout() {
        #expect(MemoryLayout<ferry_luo_finish_request>.size == 8)
        #expect(MemoryLayout<ferry_luo_finish_request>.offset(of: \.reserved) == 4)
    }

    @Test func getNameRequestLayout() {
        #expect(MemoryLayout<ferry_luo_get_name_request>.size == 72)
        #expect(MemoryLayout<ferry_luo_get_name_request>.offset(of: \.reserved) == 4)
        #expect(MemoryLayout<ferry_luo_get_name_request>.offset(of: \.name) == 8)
    }

    @Test func structSizesMatchRequests() {
        #expect(LiveUpdateRequest.createSession.structSize == 72)
        #expect(LiveUpdateRequest.preserveFD.structSize == 16)
        #expect(LiveUpdateRequest.finish.structSize == 8)
        #expect(LiveUpdateRequest.getName.structSize == 72)
    }

    @Test func requestBufferFieldsAtKernelOffsets() {
        var buffer = RequestBuffer(for: .preserveFD)
        buffer.fd = 7
        buffer.token = 0x0102_0304_0506_0708
        #expect(buffer.bytes == [16, 0, 0, 0, 7, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
        var named = RequestBuffer(for: .createSession)
        named.name = Array("abc".utf8)
        #expect(named.bytes[8..<12] == [0x61, 0x62, 0x63, 0])
        #expect(named.name == Array("abc".utf8))
        #expect(named.size == 72)
    }
}

@Suite struct BehaviourLevelTests {
    @Test(arguments: [("6.19.3", BehaviourLevel.v6_19), ("7.0.1", .v6_19), ("7.1.9", .v7_1), ("7.2.13", .v7_2),
                      ("7.3.4", .v7_3), ("8.0", .v7_3)])
    func releases(release: String, level: BehaviourLevel) {
        #expect(BehaviourLevel.forRelease(release) == level)
    }

    @Test func olderReleasesHaveNoLevel() {
        #expect(BehaviourLevel.forRelease("6.18.44-fc") == nil)
        #expect(BehaviourLevel.v6_19 < .v7_3)
    }
}

@Suite struct UnavailabilityTests {
    @Test func diagnosesWhyTheDeviceIsMissing() {
        #expect(KernelBackend.diagnoseMissingDevice(commandLine: "console=ttyS0", miscDeviceRegistered: false)
            == .bootedWithoutLiveUpdate)
        #expect(KernelBackend.diagnoseMissingDevice(commandLine: "liveupdate=on", miscDeviceRegistered: false)
            == .bootedWithoutKexecHandover)
        #expect(KernelBackend.diagnoseMissingDevice(commandLine: "kho=on liveupdate=1", miscDeviceRegistered: false)
            == .kernelWithoutLiveUpdate)
        #expect(KernelBackend.diagnoseMissingDevice(commandLine: "kho=on liveupdate=on", miscDeviceRegistered: true)
            == .noDeviceNode)
    }

    @Test func missingDeviceIsUnavailableNotAnError() {
        do throws(LiveUpdateError) {
            _ = try LiveUpdateDevice.open(KernelBackend(devicePath: "/nonexistent/liveupdate"))
            Issue.record("opened a device that does not exist")
        } catch {
            guard case .unavailable(let why) = error.kind else {
                Issue.record("expected unavailable, got \(error)")
                return
            }
            #expect(error.description.contains("live update unavailable"))
            // The kernel backend explains itself in kernel terms, never as a missing emulator.
            if case .emulatorNotRunning = why { Issue.record("kernel backend blamed the emulator: \(why)") }
        }
    }

    @Test func errorsNameSessionTokenAndErrno() {
        let error = LiveUpdateError(.system(.resourceBusy), operation: "LIVEUPDATE_SESSION_PRESERVE_FD",
                                    session: "vm-17", token: 4)
        #expect(error.description == "LIVEUPDATE_SESSION_PRESERVE_FD session 'vm-17' token 4: EBUSY (Device or resource busy)")
        #expect(error.errno == .resourceBusy)
    }
}
