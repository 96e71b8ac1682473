#if canImport(Glibc)
import Glibc
#endif

/// One command line of ExecStart=, after systemd's quoting, prefixes and variable expansion rules.
public struct ExecCommand: Sendable, Equatable {
    /// The program to execute (absolute, or found in the fixed search path).
    public var path: String
    /// argv, argv[0] included, before variable expansion (which happens at spawn time, with the
    /// process's final environment, as systemd does).
    public var arguments: [String]
    /// `-` prefix: a non-zero exit counts as success.
    public var ignoreFailure: Bool
    /// False with the `:` prefix.
    public var expandsVariables: Bool = true

    /// argv with `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` expanded from `environment`.
    public func expandedArguments(_ environment: [String: String]) -> [String] {
        guard expandsVariables else { return arguments }
        return [arguments[0]] + arguments.dropFirst().flatMap { Self.expandVariables($0, environment) }
    }

    static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// Parses `value`; the program itself may use variables from `environment` (Environment=).
    static func parse(_ value: String, environment: [String: String]) -> Result<ExecCommand, ParseError> {
        var text = Substring(value)
        var ignoreFailure = false
        var separateArgv0 = false
        var expand = true
        while let first = text.first, "-@:+!".contains(first) {
            switch first {
            case "-": ignoreFailure = true
            case "@": separateArgv0 = true
            case ":": expand = false
            default: break  // + and ! (privilege handling) do not apply: ferryd runs services as configured
            }
            text = text.dropFirst()
        }
        var words: [String]
        do throws(Words.Failure) {
            words = try Words.split(String(text))
        } catch {
            return .failure(ParseError("cannot parse command line: \(error)"))
        }
        guard var program = words.first, !program.isEmpty else { return .failure(ParseError("empty command line")) }
        if expand, program.contains("$") { program = expandVariables(program, environment).first ?? program }
        if separateArgv0 { words.removeFirst() } else { words[0] = program }
        guard !words.isEmpty else { return .failure(ParseError("'@' needs a program and an argv[0]")) }
        // A bare name not found now stays as written: it is looked up again at start, and fails
        // with ENOENT there if it is still missing (the loader warns about it).
        guard let path = resolve(program) ?? (program.contains("/") ? nil : program) else {
            return .failure(ParseError("program '\(program)' is neither an absolute path nor a plain name"))
        }
        return .success(ExecCommand(path: path, arguments: words, ignoreFailure: ignoreFailure, expandsVariables: expand))
    }

    /// `$VAR` alone splits into words at whitespace; `${VAR}` substitutes in place.
    static func expandVariables(_ word: String, _ environment: [String: String]) -> [String] {
        if word.hasPrefix("$"), !word.hasPrefix("${"), word.count > 1,
            word.dropFirst().allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
        {
            let value = environment[String(word.dropFirst())] ?? ""
            return value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        }
        var out = ""
        var rest = Substring(word)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                out += rest[start.lowerBound...]
                rest = ""
                break
            }
            out += substitute(String(rest[start.upperBound..<end]), environment) ?? String(rest[start.lowerBound...end])
            rest = rest[rest.index(after: end)...]
        }
        return [out + rest]
    }

    /// `NAME`, `NAME:-default`, `NAME:+alternative`; nil (left as written) for anything else.
    private static func substitute(_ expression: String, _ environment: [String: String]) -> String? {
        func isName(_ text: Substring) -> Bool {
            !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && !(text.first?.isNumber ?? true)
        }
        let text = Substring(expression)
        if let operation = text.range(of: ":-") ?? text.range(of: ":+") {
            let name = expression[..<operation.lowerBound]
            guard isName(name) else { return nil }
            let value = environment[String(name)] ?? ""
            let argument = String(expression[operation.upperBound...])
            return expression[operation].hasSuffix("-") ? (value.isEmpty ? argument : value) : (value.isEmpty ? "" : argument)
        }
        guard isName(Substring(expression)) else { return nil }
        return environment[expression] ?? ""
    }

    static func resolve(_ program: String) -> String? {
        if program.hasPrefix("/") { return program }
        guard !program.contains("/") else { return nil }
        return searchPath.map { "\($0)/\(program)" }.first { access($0, X_OK) == 0 }
    }
}

public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension Substring {
    func range(of needle: String) -> Range<Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(needle) { return index..<self.index(index, offsetBy: needle.count) }
            index = self.index(after: index)
        }
        return nil
    }
}
