import FerrySystem
import LiveUpdate
import Supervisor

/// Under a manager above that keeps ferryd's fd store across a crash but does not carry a kexec
/// (systemd older than 261, or `--manager-above-kexec no`), the manager above plays the keeper's
/// part for the restore: each session a restore retrieves is pushed up at once and held there
/// until FINISH. (A keeper process would die with ferryd's cgroup when systemd restarts it.) A
/// ferryd started again after a crash finds the copies in LISTEN_FDS and carries the restore on
/// from them; the files it had put into stores came back from above already, and retrieving
/// them again gives the same open files, which the stores recognise.
extension LiveUpdateOrchestrator {
    /// The manager above that holds incoming sessions, when there is one.
    var sessionHolderAbove: UpstreamStore? {
        managerAbove == nil ? manager.stores.upstream : nil
    }

    /// Takes the sessions the manager above held for a restore a dead ferryd left unfinished
    /// (each fd is owned here from now on).
    public func adoptIncomingSessionsHeldAbove(_ sessions: [(name: String, fd: CInt)]) {
        for (name, fd) in sessions {
            resumed.append(.session(name, role: "incoming"), OwnedFD(adopting: fd))
        }
        guard !sessions.isEmpty else { return }
        logger.notice("live update: ferryd died during a restore; carrying it on from the \(sessions.count) retrieved LUO session(s) the manager above held (\(sessions.map(\.name).sorted().joined(separator: ", ")))")
    }

    /// Pushes a just retrieved session up. A failure is logged: the restore goes on, unguarded.
    func holdAbove(_ session: borrowing LiveUpdateSession, name: String) {
        guard let upstream = sessionHolderAbove else { return }
        do throws(SystemCallError) {
            try upstream.holdIncomingSession(session.descriptor.rawValue, name: name)
        } catch {
            logger.warning("live update: LUO session '\(name)' could not be held by the manager above (\(error)); a crash of ferryd before FINISH would lose what it still holds")
        }
    }

    /// After FINISH: every fd is in its store, each entry held above; the sessions' copies go.
    func dropSessionsHeldAbove() {
        sessionHolderAbove?.dropIncomingSessions()
    }

    /// Before FINISH: the entries restored so far are pushed up as they were stored; the mapping
    /// that names them goes up now, not at the end of this turn of the loop, so a crash right
    /// after FINISH still finds every entry placed.
    func pushStoresAboveBeforeFinish() {
        sessionHolderAbove?.pushMapping()
    }

    /// Closes the copies a restore did not use (after it, whatever it found).
    public func forgetResumedSessions() {
        resumed = KeeperTaken()
    }
}
