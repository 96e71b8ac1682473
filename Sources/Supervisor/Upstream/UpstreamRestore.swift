import FDStore
import FerrySystem

extension StoreKeeper {
    /// At start: puts the fds the manager above handed back (`LISTEN_FDS`) into their units'
    /// stores, by the mapping that came with them. Each entry keeps its index, so its later
    /// removal reaches the manager above. Units without a file become pinned placeholders, as
    /// after a live update. An fd that cannot be placed (no readable mapping, not in it, refused)
    /// is never dropped above: the manager above keeps its copy, and the problem is reported.
    /// Returns every problem, each naming the unit, fd or index.
    public func takeBack(names: [String], descriptors: consuming OwnedFDs, from upstream: UpstreamStore) -> TakeBackReport {
        var report = TakeBackReport()
        var fds = descriptors
        if let position = names.firstIndex(of: UpstreamStore.updateStateName), let state = fds.take(at: position) {
            report.updateState = try? FileIO.readAll(state.borrowed)
            upstream.dropUpdateState()
        }
        // Brokered sessions come back to the broker, not to a store; the copies above go.
        for (position, fdName) in names.enumerated() where fdName.hasPrefix(UpstreamStore.brokerSessionPrefix) {
            guard let fd = fds.take(at: position) else { continue }
            let kernelName = String(fdName.dropFirst(UpstreamStore.brokerSessionPrefix.count))
            report.brokerSessions.append((kernelName, fd.release()))
            upstream.dropBrokerSession(kernelName: kernelName)
        }
        // Sessions a restore had retrieved when ferryd died: the restore carries on from them.
        for (position, fdName) in names.enumerated() where fdName.hasPrefix(UpstreamStore.incomingSessionPrefix) {
            guard let fd = fds.take(at: position) else { continue }
            report.incomingSessions.append((String(fdName.dropFirst(UpstreamStore.incomingSessionPrefix.count)), fd.release()))
        }
        upstream.noteIncomingSessionsHeld(report.incomingSessions.map(\.name))
        guard let mappingPosition = names.firstIndex(of: UpstreamMapping.mappingName),
            let mappingFD = fds.take(at: mappingPosition)
        else {
            let entries = names.compactMap(UpstreamMapping.index(fromName:))
            if !entries.isEmpty {
                report.problems.append("the manager above handed back \(entries.count) fd(s) without \(UpstreamMapping.mappingName); none can be placed, the manager above keeps them")
                upstream.reserve(entries)
            }
            return report
        }
        let mapping: UpstreamMapping
        switch readMapping(mappingFD) {
        case .success(let reading):
            mapping = reading.mapping
            report.problems += reading.problems.map { "\(UpstreamMapping.mappingName): \($0)" }
        case .failure(let failure):
            report.problems.append("\(failure); no fd from the manager above can be placed, the manager above keeps them")
            upstream.reserve(names.compactMap(UpstreamMapping.index(fromName:)))
            return report
        }
        var owner: [UInt64: (unit: UnitName, name: String)] = [:]
        for (unit, entries) in mapping.units {
            guard let name = UnitName(unit) else { continue }
            for entry in entries { owner[entry.index] = (name, entry.name) }
        }
        upstream.reserve(names.compactMap(UpstreamMapping.index(fromName:)))
        for (position, fdName) in names.enumerated() {
            guard let index = UpstreamMapping.index(fromName: fdName), let fd = fds.take(at: position) else { continue }
            guard let (unit, name) = owner[index] else {
                report.problems.append("\(fdName): not in \(UpstreamMapping.mappingName); not placed, the manager above keeps it")
                continue
            }
            place(fd, index: index, unit: unit, name: name, upstream: upstream, report: &report)
        }
        upstream.pushMapping()
        return report
    }

    private func place(_ fd: consuming OwnedFD, index: UInt64, unit: UnitName, name: String, upstream: UpstreamStore,
                       report: inout TakeBackReport) {
        let service = units.service(unit)
        if service.isStub { service.store.limit = service.store.count + 1 }
        var one = OwnedFDs()
        one.append(fd)
        guard store(one, in: service, name: name, poll: true, origin: "the manager above", forwarding: false) > 0,
            let entry = service.store.newest
        else {
            if service.isStub { service.store.limit = service.store.count }
            report.problems.append("unit \(unit) fd '\(name)' (\(UpstreamMapping.fdName(index: index))): its store refused it; the manager above keeps it")
            return
        }
        upstream.adopt(entry, of: unit, index: index)
        if service.state.isAtRest && service.config.fdStorePreserve.outlivesProcess { states.set(service, .pinned) }
        report.placed.append(.init(unit: unit.full, name: name))
    }

    private func readMapping(_ fd: consuming OwnedFD) -> Result<UpstreamMapping.Reading, MappingError> {
        let bytes: [UInt8]
        do {
            guard try FileIO.size(of: fd.borrowed) <= Int64(UpstreamMapping.maximumSize) else {
                return .failure(MappingError(text: "\(UpstreamMapping.mappingName) is larger than \(UpstreamMapping.maximumSize) bytes"))
            }
            bytes = try FileIO.readAll(fd.borrowed)
        } catch {
            return .failure(MappingError(text: "\(UpstreamMapping.mappingName) cannot be read: \(error)"))
        }
        return UpstreamMapping.decode(bytes, isValidUnit: { UnitName($0) != nil })
    }
}

/// What came back from the manager above at start.
public struct TakeBackReport: Sendable {
    /// One fd put back into its unit's store.
    public struct Placed: Sendable, Equatable {
        public var unit: String
        public var name: String
    }
    /// Every fd put back, in the order the manager above handed them.
    public var placed: [Placed] = []
    public var restored: Int { placed.count }
    /// The live update's state, when ferryd handed a kexec to the manager above before this start.
    public var updateState: [UInt8]?
    /// Sessions ferryd's broker pushed up for the kexec, by kernel name. The descriptors are
    /// owned by whoever takes this report (the broker adopts them, or closes them).
    public var brokerSessions: [(kernelName: String, fd: CInt)] = []
    /// Sessions retrieved from the previous kernel by a restore that a crash of ferryd cut short,
    /// by session name (`UpstreamStore.incomingSessionPrefix`). Owned by whoever takes this
    /// report (the restore adopts them, or closes them); the copies above stay until its FINISH.
    public var incomingSessions: [(name: String, fd: CInt)] = []
    public var problems: [String] = []
}
