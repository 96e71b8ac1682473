#if canImport(Glibc)
import Glibc
#endif

/// ferryd's command line. Kept free of ArgumentParser so the daemon stays small.
struct DaemonOptions: Sendable {
    var unitDirectories: [String] = []
    var runtimeDirectory = "/run/ferry"
    var controlSocket: String?
    var notifySocket: String?
    var logLevel = "info"
    var sessionName = "ferry"
    var emulator: String?
    /// How to ask the manager above for a kexec, when it carries the stores.
    var kexecCommand: [String]?
    /// The update history (history.json); it must outlive a reboot to be useful.
    var stateDirectory = "/var/lib/ferry"
    /// The textfile collector's file; nil: the default, "" : none.
    var metricsFile: String?
    /// The broker's socket (io.ferry.Broker); nil: RUNTIME/broker.
    var brokerSocket: String?
    /// Who may have brokered sessions; the built-in policy (root only) when the file is missing.
    var brokerPolicy = "/etc/ferry/broker.conf"
    /// Whether the manager above carries the stores across a kexec; nil: detected.
    var managerAboveKexec: Bool?
    var help = false
    var version = false

    /// Debian's prometheus-node-exporter reads this folder (--collector.textfile.directory).
    static let textfileCollectorFolder = "/var/lib/prometheus/node-exporter"

    var controlPath: String { controlSocket ?? "\(runtimeDirectory)/control" }
    var notifyPath: String { notifySocket ?? "\(runtimeDirectory)/notify" }
    var brokerPath: String { brokerSocket ?? "\(runtimeDirectory)/broker" }
    var directories: [String] { unitDirectories.isEmpty ? ["/etc/ferry/system", "\(runtimeDirectory)/system"] : unitDirectories }

    static let usage = """
        usage: ferryd [--units DIR]... [--runtime-dir DIR] [--control PATH] [--notify PATH] [--log-level LEVEL]
          --units DIR        a unit folder; the first that has a unit wins (default /etc/ferry/system, then RUNTIME/system)
          --runtime-dir DIR  sockets and runtime units (default /run/ferry)
          --control PATH     the Varlink control socket (default RUNTIME/control)
          --notify PATH      the sd_notify socket services get as NOTIFY_SOCKET (default RUNTIME/notify)
          --log-level LEVEL  trace, debug, info, notice, warning, error
          --session NAME     Ferry's own LUO session (default ferry)
          --liveupdate-emulator PATH
                             use the LUO emulator at PATH instead of /dev/liveupdate (also
                             $FERRY_LIVEUPDATE_EMULATOR); services get it in their environment
          --state-dir DIR    the live update history (default /var/lib/ferry)
          --metrics-file PATH
                             the Prometheus textfile collector's file, rewritten atomically after
                             every update and state change (default \(textfileCollectorFolder)/ferry.prom
                             when that folder exists; "" for none)
          --kexec-command "COMMAND ARGS"
                             when nested under a manager that carries the stores across a kexec,
                             how to ask it for the kexec (under systemd 261+: systemctl kexec --no-block)
          --manager-above-kexec auto|yes|no
                             whether the manager above (systemd, another ferryd) carries the stores
                             across a kexec (default auto: systemd 261+ and ferryd do); "no" for one
                             that only keeps them across a crash of ferryd, as systemd < 261 does
          --broker PATH      the broker socket, io.ferry.Broker (default RUNTIME/broker)
          --broker-policy PATH
                             who may have brokered LUO sessions, quotas, unclaimed sessions
                             (default /etc/ferry/broker.conf; missing: root only)
          -h, --help         this text
          --version          ferryd's version
        """

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ arguments: [String]) throws -> DaemonOptions {
        var options = DaemonOptions()
        var iterator = arguments.makeIterator()
        func value(_ flag: String) throws -> String {
            guard let next = iterator.next() else { throw Invalid(description: "\(flag) needs a value") }
            return next
        }
        while let argument = iterator.next() {
            switch argument {
            case "--units": options.unitDirectories.append(try value(argument))
            case "--runtime-dir": options.runtimeDirectory = try value(argument)
            case "--control": options.controlSocket = try value(argument)
            case "--notify": options.notifySocket = try value(argument)
            case "--log-level": options.logLevel = try value(argument)
            case "--session": options.sessionName = try value(argument)
            case "--liveupdate-emulator": options.emulator = try value(argument)
            case "--state-dir": options.stateDirectory = try value(argument)
            case "--metrics-file": options.metricsFile = try value(argument)
            case "--kexec-command": options.kexecCommand = try value(argument).split(separator: " ").map(String.init)
            case "--manager-above-kexec":
                switch try value(argument) {
                case "auto": options.managerAboveKexec = nil
                case "yes": options.managerAboveKexec = true
                case "no": options.managerAboveKexec = false
                case let other: throw Invalid(description: "--manager-above-kexec takes auto, yes or no, not '\(other)'")
                }
            case "--broker": options.brokerSocket = try value(argument)
            case "--broker-policy": options.brokerPolicy = try value(argument)
            case "-h", "--help": options.help = true
            case "--version": options.version = true
            default: throw Invalid(description: "unknown argument '\(argument)'")
            }
        }
        return options
    }
}


extension DaemonOptions {
    /// The metrics file to write: the one given (none for ""), else the textfile collector's
    /// folder when node_exporter's package made it.
    var resolvedMetricsFile: String? {
        if let metricsFile { return metricsFile.isEmpty ? nil : metricsFile }
        var status = stat()
        guard stat(Self.textfileCollectorFolder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return nil }
        return "\(Self.textfileCollectorFolder)/ferry.prom"
    }
}
