import CFerry
import FDStore
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension Manager {
    /// Handles every datagram waiting on the notify socket, one at a time, in arrival order.
    ///
    /// A bounded batch per wake-up keeps the loop serving signals and control requests while a
    /// service floods the socket.
    func receiveNotifications() {
        for _ in 0..<256 {
            var message: ReceivedMessage
            do throws(SystemCallError) {
                message = try UnixSocket.receive(notifySocket.borrowed, maximumBytes: NotifyMessage.maximumSize,
                                                 maximumDescriptors: 253, nonBlocking: true, credentials: true)
            } catch {
                if error.errno != .resourceTemporarilyUnavailable { logger.warning("notify socket: \(error)") }
                return
            }
            notifyMessages += 1
            handle(&message)
        }
    }

    /// One datagram: attribute it, check NotifyAccess=, parse it, act. Descriptors not stored are
    /// closed, and every refusal is logged with its reason.
    func handle(_ message: inout ReceivedMessage) {
        let fdCount = message.descriptors.count
        guard let credentials = message.credentials else {
            logger.warning("notify: message without credentials refused\(closing(fdCount))")
            return
        }
        guard let service = sender(credentials.pid) else {
            logger.warning("notify: message from pid \(credentials.pid), which belongs to no unit, refused\(closing(fdCount))")
            return
        }
        if message.controlTruncated {
            logger.warning("\(service.name): notify message from pid \(credentials.pid) had its control data truncated (MSG_CTRUNC), refused\(closing(fdCount))")
            return
        }
        guard allowed(credentials.pid, for: service) else {
            logger.warning("\(service.name): notify message from pid \(credentials.pid) refused by NotifyAccess=\(service.config.notifyAccess.rawValue)\(closing(fdCount))")
            return
        }
        let parsed: NotifyMessage
        switch NotifyMessage.parse(message.bytes, truncated: message.payloadTruncated) {
        case .success(let value):
            parsed = value
            for skipped in value.skipped { logger.warning("\(service.name): notify message from pid \(credentials.pid): \(skipped)") }
        case .failure(let refusal):
            logger.warning("\(service.name): notify message from pid \(credentials.pid) refused: \(refusal)\(closing(fdCount))")
            return
        }
        if parsed.value("BARRIER") != nil {
            // Everything sent before it is handled by now; dropping the fd tells the sender so.
            if parsed.assignments.count != 1 || !parsed.isSet("BARRIER") {
                logger.warning("\(service.name): BARRIER=1 must be alone in its message, ignored\(closing(fdCount))")
            } else if fdCount != 1 {
                logger.warning("\(service.name): BARRIER=1 needs exactly one fd, got \(fdCount), ignored\(closing(fdCount))")
            }
            return
        }
        apply(parsed, from: credentials.pid, to: service)
        handleStore(parsed, descriptors: &message.descriptors, service: service)
    }

    private func closing(_ count: Int) -> String { count > 0 ? "; closing \(count) fd(s)" : "" }

    /// The unit `pid` belongs to, if it is one of ferryd's (main process, cgroup or process group).
    public func unit(ofProcess pid: pid_t) -> UnitName? { sender(pid)?.name }

    /// The unit a pid belongs to: a main process, or any process of a unit's process group.
    func sender(_ pid: pid_t) -> Service? {
        if let service = processes.byPID[pid] { return service }
        if let name = processes.controlGroups?.unit(of: pid), let service = services[name] { return service }
        guard let group = Processes.processGroup(of: pid) else { return nil }
        return services.values.first { $0.processGroup == group && $0.mainPID != nil }
    }

    private func allowed(_ pid: pid_t, for service: Service) -> Bool {
        switch service.config.notifyAccess {
        case .none: false
        case .main, .exec: service.mainPID == pid
        case .all: true
        }
    }

    private func apply(_ message: NotifyMessage, from pid: pid_t, to service: Service) {
        // Shown in logs and on terminals: control characters (escape sequences) are escaped.
        if let text = message.value("STATUS") { service.statusText = UnitOutput.printable(Substring(text)) }
        if let text = message.value("ERRNO") {
            if let value = Int32(text), value >= 0 { service.statusErrno = value } else {
                logger.warning("\(service.name): ERRNO=\(text) is not a valid errno, ignored")
            }
        }
        if let text = message.value("MAINPID") {
            if let newPID = pid_t(text), newPID > 0, Processes.processGroup(of: newPID) == service.processGroup {
                if let old = service.mainPID { processes.byPID[old] = nil }
                service.mainPID = newPID
                processes.byPID[newPID] = service
            } else {
                logger.warning("\(service.name): MAINPID=\(text) is not a process of the unit, ignored")
            }
        }
        if message.isSet("STOPPING") { processes.stoppingNotified(service) }
        if message.isSet("RELOADING") { processes.reloadingNotified(service) }
        if message.isSet("READY") { processes.ready(service) }
        if var answer = message.prepareAnswer {
            // The reason reaches logs and terminals: control characters are escaped, as STATUS=.
            if case .refused(let reason) = answer { answer = .refused(UnitOutput.printable(Substring(reason.prefix(512)))) }
            if let onPrepareAnswer { onPrepareAnswer(service, answer) } else {
                logger.debug("\(service.name): \(answer) with no live update asking, ignored")
            }
        }
    }

    private func handleStore(_ message: NotifyMessage, descriptors: inout OwnedFDs, service: Service) {
        let rawName = message.value("FDNAME")
        if message.isSet("FDSTOREREMOVE") {
            if let rawName, FDName.isValid(rawName) {
                let count = stores.remove(named: rawName, from: service)
                logger.debug("\(service.name): removed \(count) stored fd(s) named '\(rawName)'")
            } else {
                logger.warning("\(service.name): FDSTOREREMOVE=1 needs a valid FDNAME=, ignored")
            }
        } else if message.isSet("FDSTORE") {
            if descriptors.isEmpty {
                logger.warning("\(service.name): FDSTORE=1 without any fd, ignored")
                return
            }
            var name = rawName ?? FDName.defaultName
            if !FDName.isValid(name) {
                logger.warning("\(service.name): invalid FDNAME='\(name.prefix(80))', storing as '\(FDName.defaultName)'")
                name = FDName.defaultName
            }
            let poll = message.value("FDPOLL") != "0"
            var all = descriptors
            descriptors = OwnedFDs()
            // One fstat per fd, for the session check and for the store's duplicate rule.
            let statuses = all.rawValues.map { try? FileIdentity.stat(FileDescriptor(rawValue: $0)) }
            for index in 0..<all.count {
                let fd = FileDescriptor(rawValue: all.rawValues[index])
                guard let why = refusesSession(fd, status: statuses[index], pushedBy: service, as: name) else { continue }
                logger.warning("\(service.name): refused (EACCES) fd '\(name)': \(why)")
                _ = all.take(at: index)  // closed here
            }
            stores.store(all, in: service, name: name, poll: poll, origin: "FDSTORE=1", statuses: statuses)
            return
        }
        if !descriptors.isEmpty {
            logger.warning("\(service.name): notify message carried \(descriptors.count) fd(s) without FDSTORE=1; closing them")
        }
    }
}
