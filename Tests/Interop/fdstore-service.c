/* A service written against libsystemd, unchanged from what it would be under systemd:
 *   fdstore-service store   stores two named memfds, waits on a barrier, exits
 *   fdstore-service check   gets them back with sd_listen_fds_with_names and checks names and contents
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static const char *names[2] = {"testfd1", "testfd2"};
static const char *contents[2] = {"interop data one", "interop data two"};

static int store(void) {
    for (int i = 0; i < 2; i++) {
        int fd = memfd_create(names[i], MFD_CLOEXEC);
        if (fd < 0 || write(fd, contents[i], strlen(contents[i])) < 0) { perror("memfd"); return 1; }
        char message[64];
        snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=%s", names[i]);
        int r = sd_pid_notify_with_fds(0, 0, message, &fd, 1);
        if (r <= 0) { fprintf(stderr, "sd_pid_notify_with_fds: %s\n", strerror(-r)); return 1; }
        close(fd);
    }
    int r = sd_notify_barrier(0, 5 * 1000000ULL);
    if (r < 0) { fprintf(stderr, "sd_notify_barrier: %s\n", strerror(-r)); return 1; }
    printf("stored\n");
    return 0;
}

static int check(void) {
    char **listed = NULL;
    int n = sd_listen_fds_with_names(1, &listed);
    if (n != 2) { fprintf(stderr, "check: expected 2 fds, got %d\n", n); return 1; }
    int found = 0;
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        for (int k = 0; k < 2; k++) {
            if (strcmp(listed[i], names[k]) != 0) continue;
            char buffer[64] = {0};
            if (pread(fd, buffer, sizeof buffer - 1, 0) < 0) { perror("pread"); return 1; }
            if (strcmp(buffer, contents[k]) != 0) { fprintf(stderr, "check: %s holds '%s'\n", names[k], buffer); return 1; }
            found |= 1 << k;
        }
    }
    if (found != 3) { fprintf(stderr, "check: names were %s, %s\n", listed[0], listed[1]); return 1; }
    printf("checked\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "store") == 0) return store();
    if (argc > 1 && strcmp(argv[1], "check") == 0) return check();
    fprintf(stderr, "usage: %s store|check\n", argv[0]);
    return 2;
}
