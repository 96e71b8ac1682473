/* Benchmark sender. The same program feeds ferryd and the bare recvmsg baseline, so the ratio
 * compares receivers, not senders.
 *
 *   fdstore-sender COUNT [--stay]
 *       creates and stores COUNT memfds, one FDSTORE=1 datagram each, then waits on a barrier.
 *   fdstore-sender COUNT --batch B --go FIFO --done FIFO
 *       the ingestion benchmark: creates all COUNT memfds first (memfd_create is the sender's
 *       cost, not the receiver's), says READY=1, waits until the benchmark opens the go FIFO,
 *       sends B fds per datagram, waits on a barrier (everything sent has been handled), and
 *       writes one byte to the done FIFO. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static int barrier(void) {
    int r = sd_notify_barrier(0, 120 * 1000000ULL);
    /* ECONNREFUSED: the baseline receiver already closed its socket after counting every fd. */
    if (r < 0 && r != -ECONNREFUSED) { fprintf(stderr, "barrier: %s\n", strerror(-r)); return 1; }
    return 0;
}

static int paced(int count, int batch, const char *go, const char *done) {
    int *fds = calloc((size_t)count, sizeof *fds);
    if (!fds) return 1;
    for (int i = 0; i < count; i++) {
        fds[i] = memfd_create("bench", MFD_CLOEXEC);
        if (fds[i] < 0) { perror("memfd_create"); return 1; }
    }
    sd_notify(0, "READY=1");
    /* Blocks until the benchmark opens the FIFO for writing: every sender starts at once. */
    int start = open(go, O_RDONLY | O_CLOEXEC);
    if (start < 0) { perror("open go"); return 1; }
    close(start);
    for (int i = 0; i < count; i += batch) {
        int n = count - i < batch ? count - i : batch;
        char message[64];
        snprintf(message, sizeof message, "FDSTORE=1\nFDNAME=f%d", i);
        int r = sd_pid_notify_with_fds(0, 0, message, fds + i, (unsigned)n);
        if (r <= 0) { fprintf(stderr, "notify: %s\n", strerror(-r)); return 1; }
        for (int j = i; j < i + n; j++) close(fds[j]);
    }
    if (barrier()) return 1;
    int finished = open(done, O_WRONLY | O_CLOEXEC);
    if (finished < 0 || write(finished, "x", 1) != 1) { perror("done"); return 1; }
    close(finished);
    free(fds);
    return 0;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 100;
    int batch = 1;
    const char *go = NULL, *done = NULL;
    int stay = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--stay") == 0) stay = 1;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--go") == 0 && i + 1 < argc) go = argv[++i];
        else if (strcmp(argv[i], "--done") == 0 && i + 1 < argc) done = argv[++i];
        else { fprintf(stderr, "fdstore-sender: unknown argument %s\n", argv[i]); return 2; }
    }
    if (batch < 1 || batch > 253) { fprintf(stderr, "fdstore-sender: --batch takes 1 to 253\n"); return 2; }
    if (go && done) return paced(count, batch, go, done);
    /* --stay: a long-running notify service; after a live update it finds its fds and only says READY. */
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
    if (barrier()) return 1;
    if (stay) {
        sd_notify(0, "READY=1");
        for (;;) pause();
    }
    return 0;
}
