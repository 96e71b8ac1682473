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
    /// A LUO-capable kernel with kexec; each test takes one fact away.
    static func facts(_ commandLine: String = "kho=on liveupdate=on", release: String = "7.2.13",
                      configuration: String? = nil, registered: Bool = false, kexec: Bool? = false) -> KernelFacts {
        KernelFacts(release: release, commandLine: commandLine, configuration: configuration,
                    miscDeviceRegistered: registered, kexecLoaded: kexec)
    }

    @Test func diagnosesWhyTheDeviceIsMissing() {
        #expect(Self.facts("console=ttyS0").whyDeviceIsMissing == .bootedWithoutLiveUpdate)
        #expect(Self.facts("liveupdate=on").whyDeviceIsMissing == .bootedWithoutKexecHandover)
        #expect(Self.facts("liveupdate=on", configuration: "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC_HANDOVER=y\n"
                           + "CONFIG_LIVEUPDATE=y\nCONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT=y\n").whyDeviceIsMissing
                == .kernelWithoutLiveUpdate, "KHO on by default needs no kho=on")
        #expect(Self.facts("kho=on liveupdate=1").whyDeviceIsMissing == .kernelWithoutLiveUpdate)
        #expect(Self.facts("kho=Y liveupdate=yes").whyDeviceIsMissing == .kernelWithoutLiveUpdate)
        #expect(Self.facts("kho=off liveupdate=on").whyDeviceIsMissing == .bootedWithoutKexecHandover)
        #expect(Self.facts(registered: true).whyDeviceIsMissing == .noDeviceNode)
    }

    @Test func anOlderKernelOrOneWithoutLUOOrKexecIsNamedAsSuch() {
        // The machine these tests were written on: 6.18, no kexec, no liveupdate=on.
        let old = Self.facts("console=ttyS0 quiet", release: "6.18.44-fc-v1098", kexec: nil)
        #expect(old.whyDeviceIsMissing == .kernelTooOld(release: "6.18.44-fc-v1098"))
        #expect(old.whyDeviceIsMissing.description.contains("kernel 6.18.44-fc-v1098 is older than 6.19"))
        #expect(!old.whyDeviceIsMissing.description.contains("liveupdate=on;"))
        #expect(Self.facts(release: "5.10.0").whyDeviceIsMissing == .kernelTooOld(release: "5.10.0"))
        #expect(Self.facts(release: "6.19.0").whyDeviceIsMissing == .kernelWithoutLiveUpdate)
        #expect(Self.facts(kexec: nil).whyDeviceIsMissing == .kernelWithoutKexec(release: "7.2.13"))
        let withoutLUO = Self.facts(configuration: "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC_HANDOVER=y\n# CONFIG_LIVEUPDATE is not set\n")
        #expect(withoutLUO.whyDeviceIsMissing == .kernelBuiltWithout(option: "CONFIG_LIVEUPDATE", release: "7.2.13"))
        #expect(withoutLUO.whyDeviceIsMissing.description.contains("built without CONFIG_LIVEUPDATE"))
    }

    @Test func readinessSaysReadyUnavailableOrEmulatorAndWhetherAKernelIsLoaded() {
        var ready = Self.facts(kexec: true)
        ready.deviceNodePresent = true
        let kernel = LiveUpdateReadiness.check(KernelBackend(), facts: ready)
        #expect(kernel.ready && kernel.backend == "kernel")
        #expect(kernel.summary == "kernel ready: /dev/liveupdate (kernel 7.2.13, LUO level 7.2)")
        #expect(kernel.kexecLoaded == true && kernel.kexec.contains("a kernel is loaded"))
        let old = LiveUpdateReadiness.check(KernelBackend(), facts: Self.facts("quiet", release: "6.18.44", kexec: nil))
        #expect(!old.ready)
        #expect(old.summary.hasPrefix("live update unavailable: kernel 6.18.44 is older than 6.19"))
        #expect(old.kexecLoaded == nil && old.kexec.contains("unsupported"))
        let absent = LiveUpdateReadiness.check(EmulatorBackend(socketPath: "/nonexistent/ferry-emulator.sock"))
        #expect(!absent.ready && absent.backend == "emulator" && absent.emulatorSocket == "/nonexistent/ferry-emulator.sock")
        #expect(absent.summary.contains("no LUO emulator answers at /nonexistent/ferry-emulator.sock (ENOENT)"))
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
