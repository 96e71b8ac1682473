import FDStore
import FerryJSON
import FerrySystem
import LiveUpdate
import LiveUpdateReports
import Supervisor

/// After boot, X-FerryFDGroup= groups come back in reverse: the last group preserved is the first
/// retrieved, and within a group the last member first (a VFIO device before its iommufd before
/// the guest memory), then the group's session is finished.
extension LiveUpdateOrchestrator {
    /// One group as `state.ferry.groups` recorded it (PreparedSession+Groups.swift).
    struct RestoredGroup {
        var unit: UnitName
        var name: String
        var session: String
        var members: [String]

        /// The recorded groups that agree with the mapping: a record is used only when its session
        /// holds exactly its members, for its unit, at tokens 1…n, and no other record names that
        /// session. Any other is dropped with a problem, and its fds restore in mapping order.
        static func read(_ mapping: LiveUpdateMapping, sessionName: String, problems: inout [String]) -> [RestoredGroup] {
            var entries: [String: Set<String>] = [:]
            for (unit, unitEntries) in mapping.units {
                for case .fd(let name, let token, let shard?) in unitEntries {
                    entries[shard, default: []].insert("\(unit)\u{0}\(name)\u{0}\(token)")
                }
            }
            var seen: Set<String> = []
            return (mapping.state["ferry"]?["groups"]?.array ?? []).compactMap { value in
                guard let unit = value["unit"]?.string.flatMap(UnitName.init), let name = value["group"]?.string,
                    let session = value["session"]?.string, PreparedSession.isShard(session, of: sessionName),
                    let members = value["members"]?.array?.compactMap(\.string), !members.isEmpty,
                    entries[session] == Set(members.enumerated().map { "\(unit.full)\u{0}\($1)\u{0}\($0 + 1)" }),
                    seen.insert(session).inserted
                else {
                    problems.append("a group record in the mapping does not match its entries; its fds are restored in mapping order")
                    return nil
                }
                return RestoredGroup(unit: unit, name: name, session: session, members: members)
            }
        }
    }

    /// Retrieves every group in reverse and finishes each group's session after its members. Each
    /// fd enters its store as it is retrieved: a store lists its newest fd first, so the unit's
    /// LISTEN_FDNAMES then names each group in its declared order, ahead of its other fds.
    func restoreGroups(_ groups: [RestoredGroup], shards: Shards, device: borrowing LiveUpdateDevice,
                       report: inout RestoreReport) {
        for group in groups.reversed() {
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
            for (index, member) in group.members.enumerated().reversed() {
                restoreMember(member, token: UInt64(index + 1), of: group, from: session, report: &report)
            }
            finishGroup(session, group: group, shards: shards)
        }
    }

    private func restoreMember(_ name: String, token: UInt64, of group: RestoredGroup, from session: PreparedSession.Shard,
                               report: inout RestoreReport) {
        let fd: OwnedFD
        do throws(LiveUpdateError) {
            fd = try session.session.retrieve(token: token)
        } catch {
            return report.lose(.init(unit: group.unit.full, name: name, reason: .retrieveFailed,
                                     detail: "unit \(group.unit) fd '\(name)' (group \(group.name)) token \(token): \(error.operation) failed: \(error.errno?.symbolicName ?? "\(error.kind)")"))
        }
        guard manager.stores.attach(fd, to: group.unit, name: name, origin: "LUO") else {
            return report.lose(.init(unit: group.unit.full, name: name, reason: .storeRefused,
                                     detail: "unit \(group.unit) fd '\(name)' (group \(group.name)): its store refused it"))
        }
        report.restored.append(.init(unit: group.unit.full, name: name, type: "fd", token: token))
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
