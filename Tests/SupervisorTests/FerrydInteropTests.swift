import FerryControl
import FerrySystem
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Services written for systemd's protocol, unchanged: libsystemd (C) and python3-systemd.
@Suite struct FerrydInteropTests {
    static let interop: String = {
        var path = #filePath
        while !path.hasSuffix("/") { path.removeLast() }
        return path + "../Interop"
    }()

    @Test(.needs(.libsystemdDev)) func libsystemdServiceStoresAndGetsBack() throws {
        let folder = TemporaryDirectory("ferry-interop")
        let binary = "\(folder.path)/fdstore-service"
        let compile = try Child.spawn(["/usr/bin/cc", "-O1", "-o", binary, "\(Self.interop)/fdstore-service.c", "-lsystemd"])
        try #require(compile.wait() == 0, "cc failed: \(compile.output)")
        let ferryd = try FerrydInstance(units: [:])
        let unit = { (mode: String) in """
            [Service]
            Type=oneshot
            ExecStart=\(binary) \(mode)
            FileDescriptorStoreMax=20
            FileDescriptorStorePreserve=yes
            NotifyAccess=all
            """ }
        ferryd.writeUnit("interop-c.service", unit("store"))
        #expect(try ferryd.start("interop-c.service") == "inactive (dead-resources-pinned)")
        #expect(Set(try ferryd.storeNames("interop-c.service")) == ["testfd1", "testfd2"])
        ferryd.writeUnit("interop-c.service", unit("check"))
        // A oneshot that exits 1 (check failed) ends "failed"; success comes back pinned again.
        #expect(try ferryd.start("interop-c.service") == "inactive (dead-resources-pinned)", "\(ferryd.log)")
        #expect(ferryd.log.contains("interop-c.service: main process exited with status 0"))
    }

    @Test(.needs(.pythonSystemd)) func pythonSystemdServiceStoresAndGetsBack() throws {
        let ferryd = try FerrydInstance(units: [:])
        let script = "\(ferryd.directory.path)/service.py"
        ferryd.directory.write("service.py", """
            import os, sys
            from systemd import daemon
            mode = sys.argv[1]
            if mode == "store":
                for name, text in (("alpha", b"first"), ("beta", b"second")):
                    fd = os.memfd_create(name)
                    os.write(fd, text)
                    assert daemon.notify("FDSTORE=1\\nFDNAME=%s" % name, fds=[fd])
                r, w = os.pipe()
                assert daemon.notify("BARRIER=1", fds=[w])
                os.close(w)
                import select
                p = select.poll(); p.register(r, select.POLLHUP)
                assert p.poll(5000), "barrier"
                daemon.notify("READY=1")
            else:
                fds = daemon.listen_fds_with_names()
                got = {name: os.pread(fd, 100, 0) for fd, name in fds.items()}
                assert got == {"alpha": b"first", "beta": b"second"}, got
                daemon.notify("READY=1")
            """)
        let unit = { (mode: String) in """
            [Service]
            Type=notify
            ExecStart=\(systemPython) \(script) \(mode)
            FileDescriptorStoreMax=20
            FileDescriptorStorePreserve=yes
            """ }
        ferryd.writeUnit("interop-py.service", unit("store"))
        _ = try ferryd.start("interop-py.service")
        #expect(ferryd.waitUntil { try ferryd.state("interop-py.service") == "inactive (dead-resources-pinned)" })
        ferryd.writeUnit("interop-py.service", unit("check"))
        _ = try ferryd.start("interop-py.service")
        #expect(ferryd.waitUntil { try ferryd.state("interop-py.service") == "inactive (dead-resources-pinned)" })
        #expect(ferryd.log.contains("interop-py.service: main process exited with status 0"), "\(ferryd.log)")
    }
}
