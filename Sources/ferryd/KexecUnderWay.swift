import FerryControl
import FerryJSON
import FerrySystem

#if canImport(Glibc)
import Glibc
#endif

/// `ferryd --kexec-under-way [--control PATH]`: what ferry-kexec.service runs when systemd's
/// kexec.target starts (a kexec is under way, whoever asked for it): tells the running ferryd to
/// stop its units and hand their stores over (`Kexec` with `handedOver`), and waits for its
/// answer. The same as `ferryctl kexec --handed-over`, but this binary links no Foundation (which
/// ferryctl's argument parser brings in): its start is part of every kexec's blackout, and under
/// emulation (qemu TCG) that start costs tens of milliseconds more with Foundation in it.
///
/// Exit status 0 when ferryd holds the stores for the kexec (or already did), 1 otherwise, with
/// ferryd's answer on stderr.
enum KexecUnderWay {
    static let modeArgument = "--kexec-under-way"

    static func run(arguments: [String]) -> Never {
        var control = "/run/ferry/control"
        var remaining = arguments.makeIterator()
        while let argument = remaining.next() {
            guard argument == "--control", let path = remaining.next() else {
                printError("ferryd \(modeArgument): unknown argument '\(argument)'; usage: ferryd \(modeArgument) [--control PATH]")
                exit(2)
            }
            control = path
        }
        exit(tellFerryd(control: control))
    }

    /// Asks the ferryd at `control` to stop its units and hand their stores over for a kexec under
    /// way, and waits for its answer; says the outcome on stdout or stderr. Returns the exit status.
    static func tellFerryd(control: String) -> CInt {
        let reply: Varlink.Reply
        do throws(SystemCallError) {
            var client = try VarlinkClient(path: control)
            reply = try client.call(Varlink.Call(method: "io.ferry.Manager.Kexec", parameters: ["handedOver": .bool(true)]))
        } catch {
            printError("ferryd: cannot reach ferryd at \(control) to tell it a kexec is under way: \(error)")
            return 1
        }
        if let error = reply.error {
            let failure = reply.parameters["report"]?["failure"]?.string ?? JSONValue.object(reply.parameters).encodedString()
            printError("ferryd: the kexec under way: \(error): \(failure)")
            return 1
        }
        if reply.parameters["alreadyHandingOver"]?.bool == true {
            print("ferryd is already handing its stores over for this kexec")
        } else {
            let preserved = reply.parameters["report"]?["preserved"]?.array?.count
            print("ferryd handed its units' stores over for the kexec\(preserved.map { " (\($0) entries)" } ?? "")")
        }
        return 0
    }
}
