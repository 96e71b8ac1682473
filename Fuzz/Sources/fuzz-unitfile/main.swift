// UnitFile.parse + ServiceConfig.interpret: a unit file as ferryd loads it, for a unit name taken
// from the input's first line (templates and their specifiers included), then the parsed commands'
// variable expansion as at spawn time.
import FuzzSupport
import Supervisor

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    // The loader reads files as UTF-8 with replacement characters.
    let text = String(decoding: input, as: UTF8.self)
    let firstLine = text.prefix { $0 != "\n" }
    let unit = UnitName(String(firstLine)) ?? UnitName(firstLine.hasPrefix("#@") ? "fuzz@in\\x2dst.service" : "fuzz.service")!
    let file = UnitFile.parse(text)
    let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
    for (_, assignments) in file.sections {
        for assignment in assignments {
            require(!assignment.key.isEmpty, "empty key")
            require(assignment.line >= 1 && assignment.line <= lineCount, "line \(assignment.line) of \(lineCount)")
        }
    }
    let (config, warnings) = ServiceConfig.interpret(file, unit: unit)
    require(warnings.count >= file.warnings.count, "interpret lost parser warnings")
    require(config.type == .oneshot || config.execStart.count <= 1, "several ExecStart= kept without Type=oneshot")
    let environment = Dictionary(config.environment, uniquingKeysWith: { _, last in last })
    for command in config.execStart + config.execStartPre + config.execStartPost + config.execStop {
        require(!command.arguments.isEmpty, "a command without argv")
        _ = command.expandedArguments(environment)
    }
    _ = config.startTimeout
    _ = config.notifyAccess
    _ = unit.template
    return 0
}

runFuzzer(testOneInput)
