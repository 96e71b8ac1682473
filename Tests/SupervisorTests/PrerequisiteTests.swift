import FerryTestSupport
import Testing

/// The skips for missing packages (Tests/setup.sh installs them; tests say what is missing).
@Suite struct PrerequisiteTests {
    @Test func ferryTestWithoutNamesPackagesToActAsMissing() {
        #expect(Prerequisite.pretendMissing(environment: nil).isEmpty)
        #expect(Prerequisite.pretendMissing(environment: "python3-systemd") == [.pythonSystemd])
        #expect(Prerequisite.pretendMissing(environment: "util-linux, libsystemd-dev,unknown") == [.utilLinux, .libsystemdDev])
    }

    @Test func theSkipLineSaysWhatToInstall() {
        #expect(Prerequisite.pythonSystemd.skipNote.contains("apt-get install python3 python3-systemd"))
        #expect(Prerequisite.libsystemdDev.skipNote.contains("libsystemd-dev"))
        #expect(Prerequisite.utilLinux.skipNote.contains("setpriv and prlimit"))
    }
}
