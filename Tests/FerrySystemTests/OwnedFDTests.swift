import CFerry
@testable import FerrySystem
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct OwnedFDTests {
    @Test func closesExactlyOnceWhenDropped() throws {
        let raw: CInt
        do {
            let fd = try Memfd.create(name: "owned")
            raw = fd.rawValue
            #expect(FileDescriptor(rawValue: raw).isOpen)
        }
        #expect(!FileDescriptor(rawValue: raw).isOpen)
    }

    @Test func releaseHandsOverWithoutClosing() throws {
        let fd = try Memfd.create(name: "released")
        let raw = fd.release()
        #expect(FileDescriptor(rawValue: raw).isOpen)
        #expect(close(raw) == 0)
    }

    @Test func duplicateIsCloseOnExecAndSameFile() throws {
        let fd = try Memfd.create(name: "dup")
        let copy = try fd.duplicate()
        #expect(copy.rawValue != fd.rawValue)
        #expect(copy.borrowed.isCloseOnExec)
        #expect(try FileIdentity.sameOpenFile(fd.borrowed, copy.borrowed))
    }

    @Test func ownedFDsClosesWhatWasNotTaken() throws {
        let a = try Memfd.create(name: "a")
        let b = try Memfd.create(name: "b")
        let rawA = a.rawValue
        let rawB = b.rawValue
        var taken: OwnedFD?
        do {
            var many = OwnedFDs()
            many.append(a)
            many.append(b)
            taken = many.take(at: 1)
            #expect(many.rawValues[1] == -1)
        }
        #expect(!FileDescriptor(rawValue: rawA).isOpen)
        #expect(FileDescriptor(rawValue: rawB).isOpen)
        _ = taken
    }

    @Test func errnoNamesRoundTrip() {
        #expect(Errno.resourceBusy.symbolicName == "EBUSY")
        #expect(Errno(symbolicName: "ENOTTY") == .inappropriateIOCTLForDevice)
        #expect(Errno(symbolicName: "EWHATEVER") == nil)
        #expect(SystemCallError("ioctl", .invalidArgument).description.hasPrefix("ioctl: EINVAL"))
    }
}

@Suite struct MemfdTests {
    @Test func contentsSizeAndOffset() throws {
        let fd = try Memfd.create(name: "contents", contents: Array("hello".utf8))
        #expect(try FileIO.size(of: fd.borrowed) == 5)
        #expect(try FileIO.offset(of: fd.borrowed) == 5)
        #expect(try FileIO.readAll(fd.borrowed) == Array("hello".utf8))
        try FileIO.seek(fd.borrowed, to: 2)
        #expect(try FileIO.offset(of: fd.borrowed) == 2)
        #expect(fd.borrowed.isCloseOnExec)
        #expect(try FileIdentity.linkText(fd.borrowed) == "/memfd:contents (deleted)")
    }

    @Test func sealsStopChanges() throws {
        let fd = try Memfd.create(name: "sealed", contents: [1, 2, 3])
        try Memfd.addSeals([.shrink, .grow, .write, .seal], to: fd.borrowed)
        #expect(try Memfd.seals(of: fd.borrowed) == [.shrink, .grow, .write, .seal])
        #expect(throws: SystemCallError("ftruncate", .notPermitted)) { try FileIO.truncate(fd.borrowed, to: 10) }
        #expect(throws: SystemCallError("fcntl(F_ADD_SEALS)", .notPermitted)) {
            try Memfd.addSeals([.exec], to: fd.borrowed)
        }
    }

    @Test func withoutSealingStartsSealed() throws {
        let fd = try Memfd.create(name: "nosealing", allowSealing: false)
        #expect(try Memfd.seals(of: fd.borrowed) == [.seal])
    }
}

@Suite struct MountTableTests {
    @Test func parsesMountinfoWithEscapesAndOptionalFields() {
        let text = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
            23 22 0:5 / /proc rw,nosuid - proc proc rw
            40 22 8:2 / /srv/my\\040disk rw master:3 shared:9 - xfs /dev/vdb rw
            """
        #expect(Mounts.parse(text) == [
            .init(mountPoint: "/", type: "ext4"), .init(mountPoint: "/proc", type: "proc"),
            .init(mountPoint: "/srv/my disk", type: "xfs"),
        ])
        #expect(Mounts.virtualTypes.contains("proc") && !Mounts.virtualTypes.contains("ext4"))
    }

    @Test func readsThisProcessesTable() {
        #expect(Mounts.current().contains { $0.mountPoint == "/" })
    }
}
