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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static const char *unit_name = "client";

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

static int after_kexec(void) {
    char line[4096] = {0};
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t got = read(fd, line, sizeof line - 1);
    close(fd);
    return got > 0 && strstr(line, "ferry_stage=2") != NULL;
}

static int store(unsigned count, size_t size, uint8_t *pattern) {
    for (unsigned i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "mem-%u", i);
        int fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0) { report("FAILED: memfd_create: %s", strerror(errno)); return -1; }
        fill(pattern, size, i);
        for (size_t done = 0; done < size;) {
            ssize_t written = pwrite(fd, pattern + done, size - done, done);
            if (written <= 0) { report("FAILED: writing %s: %s", name, strerror(errno)); return -1; }
            done += written;
        }
        char message[64];
        snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=%s", name);
        int r = sd_pid_notify_with_fds(0, 0, message, &fd, 1);
        close(fd);
        if (r <= 0) { report("FAILED: FDSTORE %s: %s", name, r < 0 ? strerror(-r) : "no NOTIFY_SOCKET"); return -1; }
    }
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
        struct stat info;
        if (fstat(fd, &info) != 0 || (size_t)info.st_size != size) {
            if (!*problem) snprintf(problem, sizeof problem, "%s has %lld bytes", name, (long long)info.st_size);
            continue;
        }
        size_t done = 0;
        while (done < size) {
            ssize_t got = pread(fd, read_back + done, size - done, done);
            if (got <= 0) break;
            done += got;
        }
        fill(pattern, size, i);
        if (done != size || memcmp(pattern, read_back, size) != 0) {
            if (!*problem) snprintf(problem, sizeof problem, "%s differs", name);
            continue;
        }
        good++;
        bytes += size;
    }
    for (int k = 0; k < listened; k++)
        if (!names || !names[k] || strncmp(names[k], "mem-", 4) != 0) extra++;
    if (good == count && extra == 0)
        report("verified %u of %u fds, %zu bytes", good, count, bytes);
    else
        report("FAILED: verified %u of %u fds (%d received, %u unexpected)%s%s", good, count, listened, extra,
               *problem ? ": " : "", problem);
}

int main(int argc, char **argv) {
    if (argc != 5 || strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "usage: %s serve NAME N SIZE\n", argv[0]);
        return 2;
    }
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
        report("stored %u fds of %zu bytes", count, size);
    }
    sd_notify(0, "READY=1");
    for (;;) pause();
}
