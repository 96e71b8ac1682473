#define _GNU_SOURCE
#include "ferry_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/// Writes `value` in decimal at `out` and a terminating NUL; async-signal-safe.
static void write_decimal(char *out, long value) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0 && count < 23);
    for (int i = 0; i < count; i++) out[i] = digits[count - 1 - i];
    out[count] = 0;
}

static void fail(int report, int code) {
    ssize_t ignored = write(report, &code, sizeof code);
    (void)ignored;
    _exit(127);
}

static void child(const struct ferry_spawn_request *r, int report) {
    // Every signal stays blocked (as in ferryd) until the dispositions are the defaults, just
    // before execve: no handler of the parent can run on the memory this child borrows.
    struct sigaction defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.sa_handler = SIG_DFL;
    // glibc refuses its own internal signals (32, 33); the kernel does not. They are reset last,
    // after the ID change (dispositions are the child's own: vfork does not share them).
    int internal[4];
    int internal_count = 0;
    for (int signal = 1; signal < NSIG; signal++) {
        if (signal == SIGKILL || signal == SIGSTOP) continue;
        if (sigaction(signal, &defaults, NULL) < 0 && internal_count < 4) internal[internal_count++] = signal;
    }
    if (setsid() < 0) fail(report, errno);
    if (r->cgroup_procs_fd >= 0) {
        char text[24];
        write_decimal(text, (long)getpid());
        if (write(r->cgroup_procs_fd, text, strlen(text)) < 0) fail(report, errno);
    }

    // Lift every source above the target range first, so that placing one cannot clobber another.
    int top = 3 + r->listen_fd_count;
    for (int i = 0; i < 3; i++) if (r->stdio[i] >= top) top = r->stdio[i] + 1;
    for (int i = 0; i < r->listen_fd_count; i++) if (r->listen_fds[i] >= top) top = r->listen_fds[i] + 1;
    if (report >= top) top = report + 1;
    int lifted_stdio[3];
    for (int i = 0; i < 3; i++) {
        if (r->stdio[i] < 0) {
            lifted_stdio[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (lifted_stdio[i] < 0) fail(report, errno);
            int moved = fcntl(lifted_stdio[i], F_DUPFD_CLOEXEC, top);
            if (moved < 0) fail(report, errno);
            lifted_stdio[i] = moved;
        } else {
            lifted_stdio[i] = fcntl(r->stdio[i], F_DUPFD_CLOEXEC, top);
            if (lifted_stdio[i] < 0) fail(report, errno);
        }
    }
    int lifted[r->listen_fd_count > 0 ? r->listen_fd_count : 1];
    for (int i = 0; i < r->listen_fd_count; i++) {
        lifted[i] = fcntl(r->listen_fds[i], F_DUPFD_CLOEXEC, top);
        if (lifted[i] < 0) fail(report, errno);
    }
    // dup2 leaves the new descriptor without FD_CLOEXEC: exactly what the program must inherit.
    for (int i = 0; i < 3; i++) if (dup2(lifted_stdio[i], i) < 0) fail(report, errno);
    for (int i = 0; i < r->listen_fd_count; i++) if (dup2(lifted[i], 3 + i) < 0) fail(report, errno);
    // Everything else closes at exec; the report pipe stays usable until then.
    if (syscall(SYS_close_range, 3 + r->listen_fd_count, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3 + r->listen_fd_count; fd < 65536; fd++) {
            if (fd != report) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }

    if (r->working_directory && chdir(r->working_directory) < 0) fail(report, errno);
    if (r->set_ids) {
        // Raw system calls: glibc's wrappers would also change every other thread of the process,
        // and this child shares the parent's memory (vfork), so it would reach the parent's threads.
        if (syscall(SYS_setgroups, (size_t)r->group_count, r->groups) < 0) fail(report, errno);
        if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0) fail(report, errno);
        if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0) fail(report, errno);
    }
    for (int i = 0; i < internal_count; i++) {
        struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } raw = {0};
        syscall(SYS_rt_sigaction, internal[i], &raw, NULL, sizeof raw.mask);
    }
    if (r->listen_pid_entry) write_decimal(r->listen_pid_entry + strlen("LISTEN_PID="), (long)getpid());
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) fail(report, errno);
    execve(r->path, r->argv, r->envp);
    fail(report, errno);
}

pid_t ferry_spawn(const struct ferry_spawn_request *request) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return -1;
    // vfork: the child borrows the parent's memory until it executes the program, instead of a
    // copy of ferryd's page tables that the parent then pays for again, page by page, in copy-on-
    // write faults (a service's start, under emulation, took tens of ms more). The parent waits
    // meanwhile. The child only makes system calls, writes its own stack and the request's
    // LISTEN_PID= string (made for this spawn), and ends in execve or _exit.
    pid_t pid = vfork();
    if (pid < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) child(request, report[1]);
    close(report[1]);
    int code = 0;
    ssize_t got;
    do got = read(report[0], &code, sizeof code); while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof code) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        errno = code;
        return -1;
    }
    return pid;
}
