import FerryControl
import FerryTestSupport
import FoundationEssentials

/// The test services' folder.
let servicesFolder: String = {
    var path = #filePath
    while !path.hasSuffix("/") { path.removeLast() }
    return path + "../Interop"
}()

let tool = "\(servicesFolder)/tool.py"

/// A unit running tool.py with `actions`.
func toolUnit(_ actions: String, type: String = "notify", extra: String = "") -> String {
    """
    [Unit]
    Description=test service: \(actions)

    [Service]
    Type=\(type)
    ExecStart=\(systemPython) \(tool) \(actions)
    FileDescriptorStoreMax=10
    FileDescriptorStorePreserve=yes
    TimeoutStopSec=5
    \(extra)
    """
}

/// What tool.py's `report` wrote.
struct Report: Decodable {
    struct FD: Decodable {
        var fd: Int
        var name: String?
        var data: String
        var link: String
    }
    var pid: Int
    var listenPID: String?
    var listenFDs: Int
    var fds: [FD]
    var open: [Int]
    var sigBlk: String
    var sigIgn: String
    var uid: Int
    var gid: Int
    var cwd: String
    var env: [String: String]

    static func read(_ path: String) -> Report? {
        let text = readText(path)
        guard !text.isEmpty else { return nil }
        return try? JSONDecoder().decode(Report.self, from: Data(text.utf8))
    }
}

extension FerrydInstance {
    /// Starts `unit` and returns the reply's unit summary or error name.
    @discardableResult
    func start(_ unit: String) throws -> String {
        let reply = try call("StartUnit", ["name": .string(unit)])
        return reply.error ?? "\(reply.parameters["unit"]?["active"]?.string ?? "?") (\(reply.parameters["unit"]?["sub"]?.string ?? "?"))"
    }

    @discardableResult
    func stop(_ unit: String) throws -> String {
        let reply = try call("StopUnit", ["name": .string(unit)])
        return reply.error ?? "\(reply.parameters["unit"]?["active"]?.string ?? "?") (\(reply.parameters["unit"]?["sub"]?.string ?? "?"))"
    }

    func storeNames(_ unit: String) throws -> [String] {
        try fdStore(unit).compactMap { $0["name"]?.string }
    }
}
