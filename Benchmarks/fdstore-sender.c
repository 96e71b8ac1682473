/* Benchmark sender: stores N fresh memfds, one FDSTORE=1 datagram each, then waits on a barrier.
 * The same program feeds ferryd and the bare recvmsg baseline, so the ratio compares receivers. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 100;
    /* --stay: a long-running notify service; after a live update it finds its fds and only says READY. */
    int stay = argc > 2 && strcmp(argv[2], "--stay") == 0;
    if (stay && sd_listen_fds(0) > 0) {
        sd_notify(0, "READY=1");
        for (;;) pause();
    }
    for (int i = 0; i < count; i++) {
        int fd = memfd_create("bench", MFD_CLOEXEC);
        if (fd < 0) { perror("memfd_create"); return 1; }
        char message[64];
        snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=f%d", i);
        int r = sd_pid_notify_with_fds(0, 0, message, &fd, 1);
        if (r <= 0) { fprintf(stderr, "notify: %s\n", strerror(-r)); return 1; }
        close(fd);
    }
    int r = sd_notify_barrier(0, 60 * 1000000ULL);
    /* ECONNREFUSED: the baseline receiver already closed its socket after counting every fd. */
    if (r < 0 && r != -ECONNREFUSED) { fprintf(stderr, "barrier: %s\n", strerror(-r)); return 1; }
    if (stay) {
        sd_notify(0, "READY=1");
        for (;;) pause();
    }
    return 0;
}
