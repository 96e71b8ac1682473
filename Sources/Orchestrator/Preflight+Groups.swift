import FDStore
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The dry run's answer for X-FerryFDGroup= groups, shaped like PreparedSession+Groups: each group
/// tried in a scratch session of its own, members in order, all-or-nothing.
extension LiveUpdateOrchestrator {
    /// One entry per member, in preservation order, each naming its group and place.
    func tryGroups(_ groups: [StoreCollection.Group]) -> [PreflightReport.Entry] {
        var entries: [PreflightReport.Entry] = []
        for (index, group) in groups.enumerated() {
            let failure = tryGroup(group, scratchName: "\(sessionName)-preflight-\(getpid())-g\(index + 1)")
            for (position, member) in group.members.enumerated() {
                let fd = FileDescriptor(rawValue: member.fd)
                let type = LossReasons.kind(of: fd)
                let why = failure.map { LossReasons.groupIncomplete(group.name, failed: $0.member, because: $0.reason) }
                let bytes = why == nil && type == "memfd" ? (try? FileIO.size(of: fd)) : nil
                entries.append(.init(unit: member.unit.full, name: member.name, type: type, survives: why == nil, reason: why,
                                     bytes: bytes, group: "\(group.name) #\(position + 1)"))
            }
        }
        return entries
    }

    /// The first member that would fail and why; nil when the whole group would ride. The scratch
    /// session closes on return, which the kernel treats as never preserved.
    private func tryGroup(_ group: StoreCollection.Group, scratchName: String) -> (member: String, reason: String)? {
        guard group.members.count <= PreparedSession.filesPerSession else {
            return (group.members[PreparedSession.filesPerSession].name, "a group holds at most \(PreparedSession.filesPerSession) fds")
        }
        let session: LiveUpdateSession
        do throws(LiveUpdateError) {
            session = try LiveUpdateDevice.open(backend).createSession(named: scratchName)
        } catch {
            // No session to try in: memfds are the only type mainline LUO carries.
            for member in group.members {
                let fd = FileDescriptor(rawValue: member.fd)
                if LossReasons.kind(of: fd) != "memfd" {
                    return (member.name, LossReasons.preserveFailed(.noSuchFileOrDirectory, fd: fd).reason + "; \(LiveUpdateRequest.preserveFD.description): ENOENT")
                }
            }
            return nil
        }
        for (index, member) in group.members.enumerated() {
            let fd = FileDescriptor(rawValue: member.fd)
            do throws(LiveUpdateError) {
                try session.preserve(fd, token: UInt64(index + 1))
            } catch {
                let errno = error.errno?.symbolicName ?? "\(error.kind)"
                return (member.name, "\(LossReasons.preserveFailed(error.errno, fd: fd).reason); \(error.operation): \(errno)")
            }
        }
        return nil
    }
}
