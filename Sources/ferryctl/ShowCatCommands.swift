import ArgumentParser
import FerryJSON
import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `ferryctl show`: properties as `Key=Value` lines, with systemd's property names.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a unit's properties as Key=Value lines (as systemctl show), or ferryd's.",
        discussion: """
            A unit that does not exist shows LoadState=not-found, as with systemctl. Use -p to pick \
            properties and --value to print only their values, e.g. ferryctl show cache -p ActiveState --value.
            """)
    @OptionGroup var options: ControlOptions
    @Argument(help: "A unit (NAME means NAME.service); without one, ferryd's own properties.") var unit: String?
    @Option(name: [.short, .customLong("property")], help: "Show only this property (repeat it, or separate names with commas).")
    var property: [String] = []
    @Flag(help: "Print only the values, one a line.") var value = false

    func run() throws {
        var properties: [(String, String)]
        var reply: [String: JSONValue]
        if let unit {
            let name = UnitNames.normalize(unit)
            do {
                reply = try options.call("GetUnit", ["name": .string(name)], unit: name)
                properties = Self.unitProperties(reply["unit"]?.object ?? [:])
            } catch let failure as Failure where failure.code == "no-such-unit" {
                reply = ["unit": .object(["name": .string(name), "load": .string("not-found"), "active": .string("inactive"),
                                          "sub": .string("dead")])]
                properties = Self.unitProperties(reply["unit"]?.object ?? [:])
            }
        } else {
            reply = try options.call("GetManager")
            properties = Self.managerProperties(reply)
        }
        let wanted = property.flatMap { $0.split(separator: ",").map(String.init) }
        if !wanted.isEmpty {
            properties = wanted.compactMap { key in properties.first { $0.0 == key } }
        }
        if options.json {
            print(JSONValue.object(Dictionary(properties.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { a, _ in a }))
                .encodedString())
        } else {
            print(properties.map { value ? $0.1 : "\($0.0)=\($0.1)" }.joined(separator: "\n"))
        }
    }

    /// GetUnit's fields under systemd's names.
    static func unitProperties(_ info: [String: JSONValue]) -> [(String, String)] {
        var list: [(String, String)] = [
            ("Id", text(info["name"])), ("Description", text(info["description"])),
            ("LoadState", text(info["load"])), ("ActiveState", text(info["active"])), ("SubState", text(info["sub"])),
            ("Result", text(info["result"], or: "success")), ("MainPID", text(info["mainPID"], or: "0")),
            ("StatusText", text(info["status"])), ("StatusErrno", text(info["errno"], or: "0")),
            ("NRestarts", text(info["restarts"], or: "0")), ("FragmentPath", text(info["path"])),
        ]
        if let enabled = info["enabled"]?.bool { list.append(("UnitFileState", enabled ? "enabled" : "disabled")) }
        list += [
            ("FileDescriptorStoreMax", text(info["fdStoreMax"], or: "0")),
            ("NFileDescriptorStore", text(info["fdStoreCount"], or: "0")),
            ("FileDescriptorStorePreserve", text(info["preserve"], or: "restart")),
        ]
        return list
    }

    /// GetManager's fields.
    static func managerProperties(_ reply: [String: JSONValue]) -> [(String, String)] {
        let liveUpdate = reply["liveUpdate"]?.object ?? [:]
        return [
            ("Version", text(reply["version"])), ("Host", text(reply["host"])),
            ("LiveUpdateBackend", text(liveUpdate["backend"])), ("LiveUpdateReady", text(liveUpdate["ready"])),
            ("LiveUpdate", text(liveUpdate["summary"])), ("KexecLoaded", text(liveUpdate["kexecLoaded"])),
            ("LiveUpdatePhase", text(reply["liveUpdatePhase"])), ("KexecCount", text(reply["kexecCount"], or: "0")),
            ("NUnits", text(reply["units"], or: "0")), ("NStoredFDs", text(reply["storedFDs"], or: "0")),
            ("NNotifyMessages", text(reply["notifyMessages"], or: "0")),
        ]
    }

    /// As systemctl show writes values: yes/no, numbers without a fraction, nothing for none.
    static func text(_ value: JSONValue?, or fallback: String = "") -> String {
        guard let value, value != .null else { return fallback }
        return value.plain
    }
}

/// `ferryctl cat`: the unit file ferryd loaded, under a `# PATH` line.
struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat", abstract: "Print a unit's file as ferryd found it (as systemctl cat).")
    @OptionGroup var options: ControlOptions
    @Argument(help: "The unit (NAME means NAME.service).") var unit: String

    func run() throws {
        let name = UnitNames.normalize(unit)
        let reply = try options.call("GetUnit", ["name": .string(name)], unit: name)
        guard let path = reply["unit"]?["path"]?.string else {
            throw Failure(code: "no-unit-file", message: "no file found for \(name)",
                          hint: "ferryd knows it without a unit file (a placeholder for a restored store, or a target)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let error = Errno(rawValue: errno)
            throw Failure(code: "cannot-read", message: "cannot read \(path): \(error.symbolicName) (\(error))",
                          hint: error == .permissionDenied ? "run as root (sudo ferryctl cat \(name))" : nil,
                          exitStatus: error == .permissionDenied ? ExitStatus.notPermitted : ExitStatus.failure)
        }
        close(fd)
        let text = FileIO.text(ofFile: path) ?? ""
        options.emit(.object(["unit": .string(name), "path": .string(path), "text": .string(text)])) {
            "# \(path)\n" + (text.hasSuffix("\n") ? String(text.dropLast()) : text)
        }
    }
}
