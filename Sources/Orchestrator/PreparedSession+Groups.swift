import FDStore
import FerryJSON
import LiveUpdate
import LiveUpdateReports
import Logging
import SystemPackage

/// X-FerryFDGroup=: a group's fds preserved all-or-nothing, in the declared order.
///
/// Each group gets a shard of its own (`NAME.N`), members at tokens 1, 2, … in order. LUO has no
/// UNPRESERVE, but closing an outgoing session unpreserves everything in it: so when a member
/// fails, dropping the group's shard takes back the members already preserved, and nothing of the
/// group crosses the kexec. After boot the restore retrieves the members in reverse and finishes
/// the group's session (LiveUpdateRestore+Groups.swift), as `state.ferry.groups` says.
extension PreparedSession {
    /// A group that was preserved whole, as the mapping's `state.ferry.groups` records it.
    struct GroupRecord {
        var unit: String
        var name: String
        var session: String
        /// In preservation order; tokens 1, 2, …
        var members: [String]

        var json: JSONValue {
            .object(["unit": .string(unit), "group": .string(name), "session": .string(session),
                     "members": .array(members.map { .string($0) })])
        }
    }

    mutating func preserve(_ group: StoreCollection.Group, report: inout LiveUpdateReport, logger: Logger) {
        guard group.members.count <= Self.filesPerSession else {
            return lose(group, failed: group.members[Self.filesPerSession].name,
                        because: "a group holds at most \(Self.filesPerSession) fds", report: &report, logger: logger)
        }
        guard let shard = openShard() else {
            return lose(group, failed: group.members[0].name, because: "its LUO session could not be created",
                        report: &report, logger: logger)
        }
        if let failure = preserveMembers(of: group, in: shard) {
            // Closing the group's session (its last reference goes with this scope) takes back
            // every member already in it: nothing of the group reaches the next kernel.
            dropLastShard()
            return lose(group, failed: failure.member, because: failure.reason, report: &report, logger: logger)
        }
        for (index, member) in group.members.enumerated() {
            let token = UInt64(index + 1)
            addToMapping(.fd(name: member.name, token: token, shard: shard.name), unit: member.unit.full)
            report.preserved.append(.init(unit: member.unit.full, name: member.name, type: "fd", token: token,
                                          sessionName: shard.name, group: group.name))
        }
        groups.append(GroupRecord(unit: group.unit.full, name: group.name, session: shard.name,
                                  members: group.members.map(\.name)))
        logger.info("\(group.label): \(group.members.count) fd(s) preserved in order in LUO session '\(shard.name)'")
    }

    /// Members at tokens 1, 2, … in order; the first that fails ends it, with why.
    private func preserveMembers(of group: StoreCollection.Group, in shard: Shard) -> (member: String, reason: String)? {
        for (index, member) in group.members.enumerated() {
            let fd = FileDescriptor(rawValue: member.fd)
            do throws(LiveUpdateError) {
                try shard.session.preserve(fd, token: UInt64(index + 1))
                shard.files += 1
            } catch {
                let reason = LossReasons.preserveFailed(error.errno, fd: fd).reason
                return (member.name, "\(reason); \(error.operation): \(error.errno?.symbolicName ?? "\(error.kind)")")
            }
        }
        return nil
    }

    /// Every member is lost, each reported with the member that failed and why.
    private func lose(_ group: StoreCollection.Group, failed: String, because reason: String,
                      report: inout LiveUpdateReport, logger: Logger) {
        let why = LossReasons.groupIncomplete(group.name, failed: failed, because: reason)
        logger.warning("\(group.label): \(why); \(group.members.count) fd(s) lost across the kexec")
        for member in group.members {
            let text = "unit \(member.unit) fd '\(member.name)': \(why); lost across the kexec"
            report.skipped.append(text)
            report.lost.append(Lost(unit: member.unit.full, name: member.name,
                                    type: LossReasons.kind(of: FileDescriptor(rawValue: member.fd)), reason: why))
            report.lose(.init(unit: member.unit.full, name: member.name, reason: .groupIncomplete, detail: text))
        }
    }

    /// Appends to the unit's entries in the mapping, after what the ungrouped loop put there.
    private mutating func addToMapping(_ entry: LiveUpdateMapping.Entry, unit: String) {
        if let index = mapping.units.firstIndex(where: { $0.unit == unit }) {
            mapping.units[index].entries.append(entry)
        } else {
            mapping.units.append((unit, [entry]))
        }
    }
}
