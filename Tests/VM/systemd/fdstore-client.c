/* The client service of the systemd VM test, written against libsystemd only, so the same binary
 * runs under systemd and under ferryd:
 *
 *   ferry-vm-client serve NAME N SIZE
 *
 * In the first boot (no ferry_stage=2 on the kernel command line) it stores N memfds of SIZE bytes
 * named mem-0 … mem-(N-1) in its manager's fd store, each filled with a pattern derived from its
 * index, waits on a barrier, and reports "stored N fds". Started again with fds in LISTEN_FDS (a
 * restart, or the boot after a kexec), it checks every byte of every fd by name and reports
 * "verified K of N fds" or what differed. After a kexec (ferry_stage=2) without fds it reports
 * "lost: no fds came back". It then signals READY=1 and waits for SIGTERM, so the manager's view
 * (StatusText, NFileDescriptorStore) can be read at leisure.
 *
 * With a fifth argument "session" it also owns a LUO session, as a VM monitor would: it opens
 * /dev/liveupdate (retrying while another process holds the single open), creates the session
 * "ferry-vm-NAME", preserves one more memfd in it at token 1, closes the device and stores the
 * session fd as "luo-session". After the kexec it takes the session from LISTEN_FDS, retrieves
 * token 1, checks its bytes and finishes the session; its reports then end in "and session".
 *
 * Every report goes to the manager as STATUS=, to stdout, and to /dev/kmsg with the CLOCK_MONOTONIC
 * time at which it was made (the kernel's printk clock is the other witness of that moment).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static const char *unit_name = "client";
static int with_session = 0;

/* The LUO uAPI (kernel-luo.md §2): every ioctl is _IO(0xBA, nr), every struct starts with its size. */
#define LUO_CREATE_SESSION 0xBA00
#define LUO_PRESERVE_FD 0xBA40
#define LUO_RETRIEVE_FD 0xBA41
#define LUO_FINISH 0xBA42
struct luo_create_session { uint32_t size; int32_t fd; uint8_t name[64]; };
struct luo_fd { uint32_t size; int32_t fd; uint64_t token __attribute__((aligned(8))); };
struct luo_finish { uint32_t size; uint32_t reserved; };
#define SESSION_TOKEN 1
#define SESSION_PATTERN 1000   /* the session's memfd is filled as memfd number 1000 would be */

/* Byte j of memfd `index`: xorshift64 seeded by the index, 8 bytes per step. */
static void fill(uint8_t *buffer, size_t size, unsigned index) {
    uint64_t state = 0x9E3779B97F4A7C15ULL * (index + 1);
    for (size_t offset = 0; offset < size; offset += 8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        size_t chunk = size - offset < 8 ? size - offset : 8;
        memcpy(buffer + offset, &state, chunk);
    }
}

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

/* One report: STATUS= to the manager, a line on stdout, a line in the kernel log. */
static void report(const char *format, ...) {
    char text[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    double at = monotonic();
    printf("ferry-vm-client %s: %s (monotonic %.6f)\n", unit_name, text, at);
    fflush(stdout);
    int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (kmsg >= 0) {
        dprintf(kmsg, "<5>ferry-vm-client %s: %s (monotonic %.6f)\n", unit_name, text, at);
        close(kmsg);
    }
    char status[600];
    snprintf(status, sizeof status, "STATUS=%s", text);
    sd_notify(0, status);
}


/* Whether this boot came by kexec from the test's first (ferry_stage=2) or second (=3) kernel. */
static int after_kexec(void) {
    char line[4096] = {0};
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t got = read(fd, line, sizeof line - 1);
    close(fd);
    return got > 0 && (strstr(line, "ferry_stage=2") != NULL || strstr(line, "ferry_stage=3") != NULL);
}

/* A memfd of `size` bytes filled with pattern `index`, or -1 after a report. */
static int patterned_memfd(const char *name, unsigned index, size_t size, uint8_t *pattern) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) { report("FAILED: memfd_create: %s", strerror(errno)); return -1; }
    fill(pattern, size, index);
    for (size_t done = 0; done < size;) {
        ssize_t written = pwrite(fd, pattern + done, size - done, done);
        if (written <= 0) { report("FAILED: writing %s: %s", name, strerror(errno)); close(fd); return -1; }
        done += written;
    }
    return fd;
}

/* Whether fd holds exactly `size` bytes of pattern `index`. */
static int holds_pattern(int fd, unsigned index, size_t size, uint8_t *pattern, uint8_t *read_back) {
    struct stat info;
    if (fstat(fd, &info) != 0 || (size_t)info.st_size != size) return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t got = pread(fd, read_back + done, size - done, done);
        if (got <= 0) break;
        done += got;
    }
    fill(pattern, size, index);
    return done == size && memcmp(pattern, read_back, size) == 0;
}

/* Creates the service's own session with one preserved memfd and stores the session fd. */
static int store_session(size_t size, uint8_t *pattern) {
    int device = -1;
    for (int attempt = 0; attempt < 600 && device < 0; attempt++) {   /* 30 s of EBUSY at most */
        device = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
        if (device < 0 && errno != EBUSY) break;
        if (device < 0) usleep(50000);
    }
    if (device < 0) { report("FAILED: open /dev/liveupdate: %s", strerror(errno)); return -1; }
    struct luo_create_session create = { .size = sizeof create, .fd = -1 };
    snprintf((char *)create.name, sizeof create.name, "ferry-vm-%s", unit_name);
    if (ioctl(device, LUO_CREATE_SESSION, &create) != 0) {
        report("FAILED: LIVEUPDATE_IOCTL_CREATE_SESSION %s: %s", (char *)create.name, strerror(errno));
        close(device);
        return -1;
    }
    close(device);  /* single open in the whole system: the manager needs it for the kexec */
    int memfd = patterned_memfd("session-mem", SESSION_PATTERN, size, pattern);
    if (memfd < 0) { close(create.fd); return -1; }
    struct luo_fd preserve = { .size = sizeof preserve, .fd = memfd, .token = SESSION_TOKEN };
    int failed = ioctl(create.fd, LUO_PRESERVE_FD, &preserve) != 0;
    if (failed) report("FAILED: LIVEUPDATE_SESSION_PRESERVE_FD: %s", strerror(errno));
    close(memfd);
    if (failed) { close(create.fd); return -1; }
    int r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=luo-session", &create.fd, 1);
    close(create.fd);
    if (r <= 0) { report("FAILED: FDSTORE luo-session: %s", r < 0 ? strerror(-r) : "no NOTIFY_SOCKET"); return -1; }
    return 0;
}

/* Whether fd is a LUO session (its /proc link reads "anon_inode:[luo_session] NAME"). */
static int is_session(int fd) {
    char path[64], link[160] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return readlink(path, link, sizeof link - 1) > 0 && strncmp(link, "anon_inode:[luo_session]", 24) == 0;
}

/* The session in LISTEN_FDS. Before a kexec (a restart) it is the outgoing session, still ours:
 * it must only be there. After a kexec, token 1 holds its pattern; then FINISH, and a new
 * outgoing session replaces it in the store, as a VM monitor would do to ride the next kexec.
 * Returns an empty string or what went wrong. */
static const char *verify_session(int listened, char **names, size_t size, uint8_t *pattern, uint8_t *read_back) {
    static char problem[160];
    int session = -1;
    for (int k = 0; k < listened; k++)
        if (names && names[k] && strcmp(names[k], "luo-session") == 0) session = SD_LISTEN_FDS_START + k;
    if (session < 0) return "luo-session missing";
    if (!is_session(session)) return "luo-session is not a LUO session";
    if (!after_kexec()) return "";
    struct luo_fd retrieve = { .size = sizeof retrieve, .fd = -1, .token = SESSION_TOKEN };
    if (ioctl(session, LUO_RETRIEVE_FD, &retrieve) != 0) {
        snprintf(problem, sizeof problem, "LIVEUPDATE_SESSION_RETRIEVE_FD: %s", strerror(errno));
        return problem;
    }
    int good = holds_pattern(retrieve.fd, SESSION_PATTERN, size, pattern, read_back);
    close(retrieve.fd);
    if (!good) return "the session's memfd differs";
    struct luo_finish finish = { .size = sizeof finish, .reserved = 0 };
    if (ioctl(session, LUO_FINISH, &finish) != 0) {
        snprintf(problem, sizeof problem, "LIVEUPDATE_SESSION_FINISH: %s", strerror(errno));
        return problem;
    }
    sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=luo-session");
    close(session);
    if (store_session(size, pattern) != 0) return "a new session for the next kexec could not be stored";
    return "";
}

static int store(unsigned count, size_t size, uint8_t *pattern) {
    for (unsigned i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "mem-%u", i);
        int fd = patterned_memfd(name, i, size, pattern);
        if (fd < 0) return -1;
        char message[64];
        snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=%s", name);
        int r = sd_pid_notify_with_fds(0, 0, message, &fd, 1);
        close(fd);
        if (r <= 0) { report("FAILED: FDSTORE %s: %s", name, r < 0 ? strerror(-r) : "no NOTIFY_SOCKET"); return -1; }
    }
    if (with_session && store_session(size, pattern) != 0) return -1;
    int r = sd_notify_barrier(0, 10 * 1000000ULL);
    if (r < 0) { report("FAILED: sd_notify_barrier: %s", strerror(-r)); return -1; }
    return 0;
}

static void verify(int listened, char **names, unsigned count, size_t size, uint8_t *pattern, uint8_t *read_back) {
    unsigned good = 0, extra = 0;
    char problem[200] = "";
    size_t bytes = 0;
    for (unsigned i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "mem-%u", i);
        int fd = -1;
        for (int k = 0; k < listened; k++)
            if (names && names[k] && strcmp(names[k], name) == 0) { fd = SD_LISTEN_FDS_START + k; break; }
        if (fd < 0) { if (!*problem) snprintf(problem, sizeof problem, "%s missing", name); continue; }
        if (!holds_pattern(fd, i, size, pattern, read_back)) {
            if (!*problem) snprintf(problem, sizeof problem, "%s differs (or has another size)", name);
            continue;
        }
        good++;
        bytes += size;
    }
    for (int k = 0; k < listened; k++)
        if (!names || !names[k] || (strncmp(names[k], "mem-", 4) != 0 && !(with_session && strcmp(names[k], "luo-session") == 0)))
            extra++;
    const char *session_problem = with_session ? verify_session(listened, names, size, pattern, read_back) : "";
    if (*session_problem && !*problem) snprintf(problem, sizeof problem, "%s", session_problem);
    if (good == count && extra == 0 && !*session_problem)
        report("verified %u of %u fds, %zu bytes%s", good, count, bytes, with_session ? " and session" : "");
    else
        report("FAILED: verified %u of %u fds (%d received, %u unexpected)%s%s", good, count, listened, extra,
               *problem ? ": " : "", problem);
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6 || strcmp(argv[1], "serve") != 0 || (argc == 6 && strcmp(argv[5], "session") != 0)) {
        fprintf(stderr, "usage: %s serve NAME N SIZE [session]\n", argv[0]);
        return 2;
    }
    with_session = argc == 6;
    unit_name = argv[2];
    unsigned count = (unsigned)strtoul(argv[3], NULL, 10);
    size_t size = (size_t)strtoull(argv[4], NULL, 10);
    uint8_t *pattern = malloc(size ? size : 1), *read_back = malloc(size ? size : 1);
    if (!pattern || !read_back) return 1;

    char **names = NULL;
    int listened = sd_listen_fds_with_names(1, &names);
    if (listened < 0) {
        report("FAILED: LISTEN_FDS: %s", strerror(-listened));
    } else if (listened > 0) {
        verify(listened, names, count, size, pattern, read_back);
    } else if (after_kexec()) {
        report("lost: no fds came back");
    } else if (store(count, size, pattern) == 0) {
        report("stored %u fds of %zu bytes%s", count, size, with_session ? " and session" : "");
    }
    sd_notify(0, "READY=1");
    for (;;) pause();
}
