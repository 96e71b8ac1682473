// The fork/exec spawner for services: everything is prepared by the caller before fork(), and the
// child uses only async-signal-safe calls, so it is safe to call from a multi-threaded process.
#ifndef FERRY_SPAWN_H
#define FERRY_SPAWN_H

#include <sys/types.h>

struct ferry_spawn_request {
    /// The program, its arguments and environment (NULL-terminated arrays).
    const char *path;
    char *const *argv;
    char *const *envp;
    /// Descriptors to place at 3, 4, ... in the child, in this order (LISTEN_FDS).
    const int *listen_fds;
    int listen_fd_count;
    /// A writable buffer inside envp that starts "LISTEN_PID=" and has room for 20 more digits;
    /// the child writes its own pid there. NULL when no LISTEN_PID is wanted.
    char *listen_pid_entry;
    /// stdin, stdout, stderr of the child; -1 opens /dev/null.
    int stdio[3];
    /// chdir here first (NULL: stay).
    const char *working_directory;
    /// Drop to these ids (set_ids != 0); groups are the supplementary groups.
    int set_ids;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    /// A cgroup.procs file to join (-1: none).
    int cgroup_procs_fd;
};

/// Forks and execs. Returns the child's pid, or -1 with errno set when fork failed or when the
/// child failed before or at execve (then the child's errno is returned and the child reaped).
/// In the child: new session (setsid), signal mask emptied and every handler reset to default,
/// descriptors placed, every other descriptor close-on-exec.
pid_t ferry_spawn(const struct ferry_spawn_request *request);

#endif
