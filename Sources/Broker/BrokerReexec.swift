import FerryJSON
import FerrySystem
import LiveUpdate

#if canImport(Glibc)
import Glibc
#endif

/// The broker across ferryd's own re-exec (daemon-reexec, an upgrade): every session ferryd
/// holds keeps its descriptor (it loses FD_CLOEXEC for the exec), and the table travels as JSON
/// in the re-exec state, so nothing a client was given is dropped and waiting sessions keep
/// their age.
extension SessionBroker {
    /// The table as JSON text, and the descriptors the exec must keep.
    public func reexecSnapshot() -> (text: String, descriptors: [CInt]) {
        var descriptors: [CInt] = []
        let records: [JSONValue] = sessions.map { record in
            let fd = record.session?.descriptor.rawValue ?? -1
            if fd >= 0 { descriptors.append(fd) }
            return .object([
                "name": .string(record.name), "kernelName": .string(record.kernelName),
                "uid": .number(Double(record.owner.uid)), "owner": .string(record.owner.owner),
                "state": .string(record.state.rawValue), "fd": .number(Double(fd)),
                "files": .number(Double(record.files)), "bytes": .number(Double(record.bytes)),
                "since": .number(Double(record.since)), "overdue": .bool(record.overdue),
            ])
        }
        let problems = lostAfterBoot.map { JSONValue.string($0) }
        return (JSONValue.object(["sessions": .array(records), "problems": .array(problems)]).encodedString(), descriptors)
    }

    /// Takes the table a previous ferryd of this boot left, adopting its descriptors (made
    /// close-on-exec again). Entries that do not parse are skipped; their fds stay unowned.
    public func adoptReexecSnapshot(_ text: String) {
        guard let state = JSONValue.parse(Array(text.utf8)) else { return }
        lostAfterBoot = (state["problems"]?.array ?? []).compactMap(\.string)
        for item in state["sessions"]?.array ?? [] {
            guard let name = item["name"]?.string, let kernelName = item["kernelName"]?.string,
                let uid = item["uid"]?.number, let owner = item["owner"]?.string,
                let state = item["state"]?.string.flatMap(BrokeredSession.State.init(rawValue:)),
                let fd = item["fd"]?.number.map({ CInt($0) })
            else { continue }
            let record = BrokeredSession(name: name, kernelName: kernelName, owner: OwnerKey(uid: UInt32(uid), owner: owner),
                                         state: state, session: nil,
                                         since: UInt64(item["since"]?.number ?? Double(MonotonicClock.microseconds())))
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                record.session = LiveUpdateSession(adopting: OwnedFD(adopting: fd), name: kernelName,
                                                   direction: state == .held ? .outgoing : .incoming, backend: backend)
            }
            record.files = Int(item["files"]?.number ?? 0)
            record.bytes = Int64(item["bytes"]?.number ?? 0)
            record.overdue = item["overdue"]?.bool ?? false
            if state == .held { outgoing[kernelName] = record } else { incoming[kernelName] = record }
        }
    }
}
