import FDStore
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Supervisor

/// After boot, X-FerryFDGroup= groups come back in reverse: the last group preserved is the first
/// retrieved, and within a group the last member first (a VFIO device before its iommufd before
/// the guest memory), then the group's session is finished. The fds then enter their unit's store
/// in the declared order, so LISTEN_FDNAMES reads as it did before the update.
extension LiveUpdateOrchestrator {
    /// One group as `state.ferry.groups` recorded it (PreparedSession+Groups.swift).
    struct RestoredGroup {
        var unit: UnitName
        var name: String
        var session: String
        var members: [String]

        /// The recorded groups, skipping any entry that is not well formed or not in Ferry's namespace.
        static func read(_ ferry: JSONValue?, sessionName: String, problems: inout [String]) -> [RestoredGroup] {
            (ferry?["groups"]?.array ?? []).compactMap { value in
                guard let unit = value["unit"]?.string.flatMap(UnitName.init), let name = value["group"]?.string,
                    let session = value["session"]?.string, PreparedSession.isShard(session, of: sessionName),
                    let members = value["members"]?.array?.compactMap(\.string)
                else {
                    problems.append("a group record in the mapping is malformed; its fds are restored in mapping order")
                    return nil
                }
                return RestoredGroup(unit: unit, name: name, session: session, members: members)
            }
        }
    }

    /// Retrieves every group in reverse, finishes each group's session after its members, then
    /// hands the fds to their stores in declared order.
    func restoreGroups(_ groups: [RestoredGroup], shards: Shards, device: borrowing LiveUpdateDevice,
                       report: inout RestoreReport) {
        var held = OwnedFDs()
        var placed: [(group: Int, member: Int, slot: Int)] = []
        for (groupIndex, group) in groups.enumerated().reversed() {
            let session: PreparedSession.Shard
            switch shard(group.session, shards, device: device) {
            case .success(let retrieved): session = retrieved
            case .failure(let error):
                for member in group.members {
                    report.lose(.init(unit: group.unit.full, name: member, reason: .retrieveFailed,
                                      detail: "unit \(group.unit) fd '\(member)' (group \(group.name)): its LUO session '\(group.session)' cannot be retrieved (\(error.errno?.symbolicName ?? "\(error.kind)")); lost"))
                }
                shards.failed[group.session] = "\(error)"
                continue
            }
            for (memberIndex, member) in group.members.enumerated().reversed() {
                let token = UInt64(memberIndex + 1)
                do throws(LiveUpdateError) {
                    held.append(try session.session.retrieve(token: token))
                    placed.append((groupIndex, memberIndex, held.count - 1))
                } catch {
                    report.lose(.init(unit: group.unit.full, name: member, reason: .retrieveFailed,
                                      detail: "unit \(group.unit) fd '\(member)' (group \(group.name)) token \(token): \(error.operation) failed: \(error.errno?.symbolicName ?? "\(error.kind)")"))
                }
            }
            finishGroup(session, group: group, shards: shards)
        }
        for (groupIndex, memberIndex, slot) in placed.sorted(by: { ($0.group, $0.member) < ($1.group, $1.member) }) {
            let group = groups[groupIndex]
            let name = group.members[memberIndex]
            guard let fd = held.take(at: slot) else { continue }
            guard manager.stores.attach(fd, to: group.unit, name: name, origin: "LUO") else {
                report.lose(.init(unit: group.unit.full, name: name, reason: .storeRefused,
                                  detail: "unit \(group.unit) fd '\(name)' (group \(group.name)): its store refused it"))
                continue
            }
            report.restored.append(.init(unit: group.unit.full, name: name, type: "fd", token: UInt64(memberIndex + 1)))
        }
    }

    /// FINISH right after the group's last retrieve, so groups finish in reverse order too; the
    /// shard leaves the list that `finishShards` goes through.
    private func finishGroup(_ session: PreparedSession.Shard, group: RestoredGroup, shards: Shards) {
        do throws(LiveUpdateError) { try session.session.finish() } catch {
            logger.warning("FINISH of LUO session '\(group.session)' (group \(group.name) of \(group.unit)) failed: \(error)")
        }
        shards.retrieved[group.session] = nil
        shards.finished.insert(group.session)
        logger.info("restored group \(group.name) of \(group.unit) from LUO session '\(group.session)' in reverse order")
    }
}
