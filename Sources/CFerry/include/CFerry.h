// CFerry: the C layer under Ferry's Swift code.
//
// It holds what Swift cannot import on its own: the LUO uAPI structs (declared here with kernel
// types so they import with the kernel's layout), fixed-arity wrappers for variadic calls
// (ioctl, syscall, fcntl) and function-like macros (CMSG_*), and prototypes for GNU-only calls
// that ferry_shim.c defines behind _GNU_SOURCE. _GNU_SOURCE must never be defined in this header:
// Clang's module merge with the Glibc module then fails.
#ifndef CFERRY_H
#define CFERRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <linux/types.h>
#include <linux/magic.h>
#include <linux/reboot.h>
#include <linux/kexec.h>
#include <linux/memfd.h>
#include <linux/kcmp.h>
#include <unistd.h>
#include <fcntl.h>

// MARK: - LUO uAPI (include/uapi/linux/liveupdate.h), declared here in our own words.

#define FERRY_LUO_IOCTL_TYPE 0xBA
#define FERRY_LUO_SESSION_NAME_LENGTH 64

/// LIVEUPDATE_IOCTL_CREATE_SESSION and LIVEUPDATE_IOCTL_RETRIEVE_SESSION (same layout).
struct ferry_luo_session_request {
    __u32 size;
    __s32 fd;
    __u8 name[FERRY_LUO_SESSION_NAME_LENGTH];
};

/// LIVEUPDATE_SESSION_PRESERVE_FD and LIVEUPDATE_SESSION_RETRIEVE_FD (same layout).
struct ferry_luo_fd_request {
    __u32 size;
    __s32 fd;
    __aligned_u64 token;
};

/// LIVEUPDATE_SESSION_FINISH.
struct ferry_luo_finish_request {
    __u32 size;
    __u32 reserved;
};

/// LIVEUPDATE_SESSION_GET_NAME (7.2+).
struct ferry_luo_get_name_request {
    __u32 size;
    __u32 reserved;
    __u8 name[FERRY_LUO_SESSION_NAME_LENGTH];
};

// MARK: - Variadic calls as fixed-arity functions.

static inline int ferry_ioctl_pointer(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

static inline long ferry_syscall0(long number) { return syscall(number); }
static inline long ferry_syscall2(long number, long a, long b) { return syscall(number, a, b); }
static inline long ferry_syscall3(long number, long a, long b, long c) { return syscall(number, a, b, c); }
static inline long ferry_syscall4(long number, long a, long b, long c, long d) {
    return syscall(number, a, b, c, d);
}
static inline long ferry_syscall5(long number, long a, long b, long c, long d, long e) {
    return syscall(number, a, b, c, d, e);
}

static inline int ferry_fcntl(int fd, int command) { return fcntl(fd, command); }
static inline int ferry_fcntl_int(int fd, int command, int value) { return fcntl(fd, command, value); }

// MARK: - Control-message macros.

static inline struct cmsghdr *ferry_cmsg_firsthdr(struct msghdr *message) { return CMSG_FIRSTHDR(message); }
static inline struct cmsghdr *ferry_cmsg_nxthdr(struct msghdr *message, struct cmsghdr *header) {
    return CMSG_NXTHDR(message, header);
}
static inline unsigned char *ferry_cmsg_data(struct cmsghdr *header) { return CMSG_DATA(header); }
static inline size_t ferry_cmsg_space(size_t length) { return CMSG_SPACE(length); }
static inline size_t ferry_cmsg_len(size_t length) { return CMSG_LEN(length); }

// MARK: - GNU-only calls and constants, defined in ferry_shim.c.

/// The credentials carried by SCM_CREDENTIALS (glibc's struct ucred, which is _GNU_SOURCE-only).
struct ferry_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

extern const int ferry_SCM_CREDENTIALS;
extern const int ferry_SO_PASSCRED;
extern const int ferry_SO_PEERCRED;
extern const int ferry_F_ADD_SEALS;
extern const int ferry_F_GET_SEALS;
extern const int ferry_F_SEAL_SEAL;
extern const int ferry_F_SEAL_SHRINK;
extern const int ferry_F_SEAL_GROW;
extern const int ferry_F_SEAL_WRITE;
extern const int ferry_F_SEAL_FUTURE_WRITE;
extern const int ferry_F_SEAL_EXEC;
extern const int ferry_F_DUPFD_CLOEXEC;
extern const int ferry_O_TMPFILE;
extern const unsigned long ferry_ANON_INODE_FS_MAGIC;
extern const unsigned long ferry_TMPFS_MAGIC;
extern const unsigned long ferry_HUGETLBFS_MAGIC;

int ferry_memfd_create(const char *name, unsigned int flags);
int ferry_close_range(unsigned int first, unsigned int last, int flags);
int ferry_pidfd_open(pid_t pid);
/// prctl(PR_SET_CHILD_SUBREAPER, 1).
int ferry_prctl_set_child_subreaper(void);
/// pipe2(fds, O_CLOEXEC).
int ferry_pipe_cloexec(int fds[2]);
/// accept4(fd, NULL, NULL, SOCK_CLOEXEC).
int ferry_accept_cloexec(int listener);
/// kexec_file_load(2): loads a kernel for a later reboot(LINUX_REBOOT_CMD_KEXEC).
long ferry_kexec_file_load(int kernel_fd, int initrd_fd, const char *command_line, unsigned long flags);
/// reboot(2) with the magic numbers, so that a command can be given exactly.
long ferry_reboot(unsigned int command);

#include "ferry_spawn.h"

#endif
