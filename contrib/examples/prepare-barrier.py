#!/usr/bin/python3
"""A service that answers ferryd's prepare barrier with the standard library alone.

Unit:  [Service] Type=notify  ExecStart=/usr/bin/python3 /path/prepare-barrier.py [REFUSAL]
       X-FerryPrepare=yes

SIGRTMIN+4 asks it to prepare for a live update: it answers X_FERRY_PREPARED=1 on
$NOTIFY_SOCKET, or X_FERRY_REFUSED=REFUSAL when one was given on its command line.
SIGRTMIN+5 says the update was abandoned: it carries on. See docs/prepare-barrier.md.
"""
import os
import signal
import socket
import sys


def notify(text):
    """One datagram to $NOTIFY_SOCKET, as sd_notify(3) sends it ('@' is an abstract address)."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(text.encode(), path)


refusal = sys.argv[1] if len(sys.argv) > 1 else None


def prepare(signum, frame):
    # Flush and quiesce here: what is on disk or in memfds now is what the next boot sees.
    notify("X_FERRY_REFUSED=" + refusal if refusal else "X_FERRY_PREPARED=1")


def resume(signum, frame):
    notify("STATUS=resumed after an abandoned live update")


signal.signal(signal.SIGRTMIN + 4, prepare)
signal.signal(signal.SIGRTMIN + 5, resume)
notify("READY=1")
while True:
    signal.pause()
