import FerrySystem
import LiveUpdate
import Logging

/// The next kernel: loaded now from the request, or already loaded by someone else.
enum KernelLoading {
    /// Nil when a kernel is ready for the hand-over, else why not.
    static func prepare(_ request: KexecRequest, logger: Logger) -> String? {
        guard let kernel = request.kernel else {
            return Kexec.isLoaded ? nil : "no kernel is loaded for kexec; give --kernel (and --initrd, --append or --reuse-cmdline)"
        }
        let commandLine = request.commandLine ?? (request.reuseCommandLine ? Kexec.currentCommandLine() ?? "" : "")
        do throws(SystemCallError) {
            try Kexec.load(kernel: kernel, initrd: request.initrd, commandLine: commandLine)
        } catch {
            return "\(error.call): \(error.errno.symbolicName) (\(error.errno))"
        }
        logger.info("loaded \(kernel) for kexec with command line '\(commandLine)'")
        return nil
    }
}
