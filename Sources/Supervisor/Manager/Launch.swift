import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

extension ProcessLifecycle {
    /// What the spawner gets for one ExecStart= line: argv expanded, the environment (PATH,
    /// Environment=, NOTIFY_SOCKET, FDSTORE, LISTEN_FDS/LISTEN_FDNAMES), the stored fds, the identity.
    ///
    /// - Parameter handingStore: pass the fd store (the main process); control processes get none.
    func spawnRequest(for service: Service, command: ExecCommand, handingStore: Bool) throws(ParseError) -> SpawnRequest {
        var environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + extraEnvironment
        for (key, value) in try service.config.resolvedEnvironment() {
            environment.removeAll { $0.hasPrefix(key + "=") }
            environment.append("\(key)=\(value)")
        }
        let passNotify = service.config.notifyAccess != .none || service.config.type == .notify
        if passNotify {
            environment.append("NOTIFY_SOCKET=\(notifySocketPath)")
            if service.config.fdStoreMax > 0 { environment.append("FDSTORE=\(service.config.fdStoreMax)") }
        }
        var listen: [CInt] = []
        if handingStore && !service.store.isEmpty {
            listen = service.store.entries.map(\.fd)
            environment.append("LISTEN_FDS=\(listen.count)")
            environment.append("LISTEN_FDNAMES=" + service.store.entries.map(\.name).joined(separator: ":"))
        }
        var identity: (uid: uid_t, gid: gid_t, groups: [gid_t])? = nil
        if service.config.user != nil || service.config.group != nil {
            identity = try Accounts.resolve(user: service.config.user, group: service.config.group)
        }
        if !listen.isEmpty { environment.append("LISTEN_PID=0") }  // for expansion only; the child writes its own
        let variables = Dictionary(environment.compactMap { entry -> (String, String)? in
            guard let equals = entry.firstIndex(of: "=") else { return nil }
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }, uniquingKeysWith: { _, last in last })
        environment.removeAll { $0 == "LISTEN_PID=0" }
        let output = output?.writer(for: service.name) ?? 2
        return SpawnRequest(path: command.path, arguments: command.expandedArguments(variables), environment: environment,
                            listenDescriptors: listen, setListenPID: !listen.isEmpty, standardIO: [-1, output, output],
                            workingDirectory: service.config.workingDirectory, identity: identity)
    }

}

/// User= and Group= to ids.
enum Accounts {
    static func resolve(user: String?, group: String?) throws(ParseError) -> (uid: uid_t, gid: gid_t, groups: [gid_t]) {
        var uid: uid_t = 0
        var gid: gid_t = 0
        var name: String?
        if let user {
            if let number = UInt32(user) {
                uid = number
            } else {
                guard let entry = getpwnam(user) else { throw ParseError("User=\(user) does not exist") }
                uid = entry.pointee.pw_uid
                gid = entry.pointee.pw_gid
                name = user
            }
        }
        if let group {
            if let number = UInt32(group) {
                gid = number
            } else {
                guard let entry = getgrnam(group) else { throw ParseError("Group=\(group) does not exist") }
                gid = entry.pointee.gr_gid
            }
        }
        var groups: [gid_t] = [gid]
        if let name {
            var count: CInt = 64
            var list = [gid_t](repeating: 0, count: 64)
            if getgrouplist(name, gid, &list, &count) >= 0 { groups = Array(list.prefix(Int(count))) }
        }
        return (uid, gid, groups)
    }
}
