/* A service that answers ferryd's prepare barrier with plain sockets (no library).
 *
 * Unit:    [Service] Type=notify  ExecStart=/usr/local/bin/prepare-barrier [REFUSAL]
 *          X-FerryPrepare=yes
 * Build:   cc -O2 -o prepare-barrier prepare-barrier.c
 *
 * SIGRTMIN+4 asks it to prepare for a live update: it answers X_FERRY_PREPARED=1 on
 * $NOTIFY_SOCKET, or X_FERRY_REFUSED=REFUSAL when one was given on its command line.
 * SIGRTMIN+5 says the update was abandoned: it carries on. See docs/prepare-barrier.md. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t asked, resumed;
static void on_prepare(int signo) { (void)signo; asked = 1; }
static void on_resume(int signo) { (void)signo; resumed = 1; }

/* One datagram to $NOTIFY_SOCKET, as sd_notify(3) sends it ('@' is an abstract address). */
static int notify(const char *text) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (!path || !*path || strlen(path) >= sizeof address.sun_path) return -1;
    memcpy(address.sun_path, path, strlen(path));
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
    socklen_t length = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent = sendto(fd, text, strlen(text), 0, (struct sockaddr *)&address, length);
    close(fd);
    return sent < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *refusal = argc > 1 ? argv[1] : NULL;
    struct sigaction prepare = { .sa_handler = on_prepare }, resume = { .sa_handler = on_resume };
    sigaction(SIGRTMIN + 4, &prepare, NULL);
    sigaction(SIGRTMIN + 5, &resume, NULL);
    /* Both stay blocked except inside sigsuspend, so none arrives between a check and the wait. */
    sigset_t both, none;
    sigemptyset(&both);
    sigaddset(&both, SIGRTMIN + 4);
    sigaddset(&both, SIGRTMIN + 5);
    sigprocmask(SIG_BLOCK, &both, &none);
    notify("READY=1");
    for (;;) {
        sigsuspend(&none);
        if (asked) {
            asked = 0;
            /* Flush and quiesce here: what is on disk or in memfds now is what the next boot sees. */
            char line[512];
            snprintf(line, sizeof line, "X_FERRY_REFUSED=%s", refusal ? refusal : "");
            notify(refusal ? line : "X_FERRY_PREPARED=1");
        }
        if (resumed) {
            resumed = 0;
            notify("STATUS=resumed after an abandoned live update");
        }
    }
}
