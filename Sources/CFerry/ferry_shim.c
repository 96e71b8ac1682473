// GNU-only calls and constants, and size checks of every struct the header declares.
#define _GNU_SOURCE
#include "CFerry.h"
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/prctl.h>

_Static_assert(sizeof(struct ferry_luo_session_request) == 72, "CREATE/RETRIEVE_SESSION struct is 72 bytes");
_Static_assert(offsetof(struct ferry_luo_session_request, name) == 8, "session name at offset 8");
_Static_assert(sizeof(struct ferry_luo_fd_request) == 16, "PRESERVE/RETRIEVE_FD struct is 16 bytes");
_Static_assert(offsetof(struct ferry_luo_fd_request, token) == 8, "token at offset 8");
_Static_assert(sizeof(struct ferry_luo_finish_request) == 8, "FINISH struct is 8 bytes");
_Static_assert(sizeof(struct ferry_luo_get_name_request) == 72, "GET_NAME struct is 72 bytes");
_Static_assert(sizeof(struct ferry_ucred) == sizeof(struct ucred), "ucred mirror");
_Static_assert(offsetof(struct ferry_ucred, uid) == offsetof(struct ucred, uid), "ucred mirror");
_Static_assert(offsetof(struct ferry_ucred, gid) == offsetof(struct ucred, gid), "ucred mirror");

const int ferry_SCM_CREDENTIALS = SCM_CREDENTIALS;
const int ferry_SO_PASSCRED = SO_PASSCRED;
const int ferry_SO_PEERCRED = SO_PEERCRED;
const int ferry_F_ADD_SEALS = F_ADD_SEALS;
const int ferry_F_GET_SEALS = F_GET_SEALS;
const int ferry_F_SEAL_SEAL = F_SEAL_SEAL;
const int ferry_F_SEAL_SHRINK = F_SEAL_SHRINK;
const int ferry_F_SEAL_GROW = F_SEAL_GROW;
const int ferry_F_SEAL_WRITE = F_SEAL_WRITE;
#ifdef F_SEAL_FUTURE_WRITE
const int ferry_F_SEAL_FUTURE_WRITE = F_SEAL_FUTURE_WRITE;
#else
const int ferry_F_SEAL_FUTURE_WRITE = 0x0010;
#endif
#ifdef F_SEAL_EXEC
const int ferry_F_SEAL_EXEC = F_SEAL_EXEC;
#else
const int ferry_F_SEAL_EXEC = 0x0020;
#endif
const int ferry_F_DUPFD_CLOEXEC = F_DUPFD_CLOEXEC;
const int ferry_O_TMPFILE = O_TMPFILE;
const unsigned long ferry_ANON_INODE_FS_MAGIC = 0x09041934;
const unsigned long ferry_TMPFS_MAGIC = TMPFS_MAGIC;
const unsigned long ferry_HUGETLBFS_MAGIC = HUGETLBFS_MAGIC;

int ferry_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

int ferry_close_range(unsigned int first, unsigned int last, int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}

int ferry_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

long ferry_kexec_file_load(int kernel_fd, int initrd_fd, const char *command_line, unsigned long flags) {
    // The length counts the terminating NUL; with no command line the kernel wants 0 and NULL.
    unsigned long length = command_line ? strlen(command_line) + 1 : 0;
    return syscall(SYS_kexec_file_load, kernel_fd, initrd_fd, length, command_line, flags);
}

long ferry_reboot(unsigned int command) {
    return syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, command, NULL);
}

int ferry_accept_cloexec(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

int ferry_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int ferry_prctl_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}
