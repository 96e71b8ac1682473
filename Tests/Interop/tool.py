#!/usr/bin/python3
"""A service for ferryd's tests, written against python3-systemd as any service would be.

Runs the actions given on its command line in order, e.g.
    tool.py report /tmp/r.json store state hello barrier ready sleep
Actions:
  report FILE        write what the process got (LISTEN_FDS with names and contents, open fds,
                     signal mask, uid/gid, environment) to FILE as JSON
  store NAME TEXT    put a memfd holding TEXT into the fd store as NAME
  store0 NAME TEXT   the same with FDPOLL=0
  storetwice N TEXT  send one memfd twice in one FDSTORE message
  storepipe NAME     store the read end of a pipe whose write end closes at once
  storepipe0 NAME    the same with FDPOLL=0
  remove NAME        FDSTOREREMOVE=1 for NAME
  barrier            sd_notify_barrier: wait until ferryd handled everything sent before
  ready              READY=1
  status TEXT        STATUS=TEXT
  notify TEXT        send TEXT as is (\\n for newlines)
  raw HEX [NFDS]     send these bytes with NFDS memfds attached
  child TEXT         send TEXT from a forked child process
  storesocket NAME   store one end of a unix socket pair (FDPOLL=0)
  forge-session NAME SERVER
                     store a socket that merely looks like emulator SERVER's session NAME
  flood N            send N STATUS= datagrams as fast as possible
  prepare ANSWER LOG answer ferryd's prepare barrier (SIGRTMIN+4) with ANSWER: ok
                     (X_FERRY_PREPARED=1), refuse:REASON (X_FERRY_REFUSED=REASON) or silent;
                     append "prepare" and, on SIGRTMIN+5, "resume" lines to LOG
  sleep              sleep until killed
  ignoreterm         ignore SIGTERM from now on
  raiselimit         raise the soft RLIMIT_NOFILE to the hard one
  exit N             exit with status N
"""
import json, os, signal, socket, sys, time
from systemd import daemon


def notify_socket():
    path = os.environ["NOTIFY_SOCKET"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(path)
    return sock


def send(text, fds=()):
    sock = notify_socket()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes().join(fd.to_bytes(4, sys.byteorder) for fd in fds))] if fds else []
    sock.sendmsg([text if isinstance(text, bytes) else text.encode()], ancillary)
    sock.close()


def report(path):
    n = int(os.environ.get("LISTEN_FDS", "0"))
    names = os.environ.get("LISTEN_FDNAMES", "").split(":") if n else []
    fds = []
    for i in range(n):
        fd = 3 + i
        try:
            data = os.pread(fd, 4096, 0).decode(errors="replace")
        except OSError as error:
            data = "error: %s" % error
        fds.append({"fd": fd, "name": names[i] if i < len(names) else None, "data": data,
                    "link": os.readlink("/proc/self/fd/%d" % fd)})
    status = open("/proc/self/status").read().splitlines()
    fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
    result = {
        "pid": os.getpid(), "listenPID": os.environ.get("LISTEN_PID"), "listenFDs": n, "fds": fds,
        "open": sorted(int(x) for x in os.listdir("/proc/self/fd")),
        "sigBlk": fields.get("SigBlk", "").strip(), "sigIgn": fields.get("SigIgn", "").strip(),
        "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k in ("FDSTORE", "NOTIFY_SOCKET", "GREETING", "FROMFILE", "INSTANCE")},
    }
    with open(path + ".tmp", "w") as out:
        json.dump(result, out)
    os.rename(path + ".tmp", path)


def main(args):
    keep = []  # sockets that must stay open while the process runs
    i = 0
    while i < len(args):
        action = args[i]
        i += 1
        if action == "report":
            report(args[i]); i += 1
        elif action in ("store", "store0"):
            name, text = args[i], args[i + 1]; i += 2
            fd = os.memfd_create(name)
            os.write(fd, text.encode())
            poll = "\nFDPOLL=0" if action == "store0" else ""
            daemon.notify("FDSTORE=1\nFDNAME=%s%s" % (name, poll), fds=[fd])
            os.close(fd)
        elif action == "storetwice":
            name, text = args[i], args[i + 1]; i += 2
            fd = os.memfd_create(name)
            os.write(fd, text.encode())
            daemon.notify("FDSTORE=1\nFDNAME=%s" % name, fds=[fd, fd])
            os.close(fd)
        elif action in ("storepipe", "storepipe0"):
            name = args[i]; i += 1
            r, w = os.pipe()
            poll = "\nFDPOLL=0" if action == "storepipe0" else ""
            daemon.notify("FDSTORE=1\nFDNAME=%s%s" % (name, poll), fds=[r])
            os.close(r)
            os.close(w)
        elif action == "storesocket":
            # One end of a unix socket pair, stored with FDPOLL=0 (the other end stays here).
            name = args[i]; i += 1
            ours, stored = socket.socketpair()
            send("FDSTORE=1\nFDNAME=%s\nFDPOLL=0" % name, [stored.fileno()])
            keep.append(ours)
        elif action == "forge-session":
            # A socket that looks like an emulator session named NAME of emulator SERVER.
            name, server = args[i], args[i + 1]; i += 2
            ours, stored = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours.bind(("\0ferry-luo:%s:s999999:%s" % (server, name)).encode())
            send("FDSTORE=1\nFDNAME=%s\nFDPOLL=0" % name, [stored.fileno()])
            keep.append(ours)
        elif action == "remove":
            daemon.notify("FDSTOREREMOVE=1\nFDNAME=%s" % args[i]); i += 1
        elif action == "barrier":
            r, w = os.pipe()
            send("BARRIER=1", [w])
            os.close(w)
            import select
            poller = select.poll()
            poller.register(r, select.POLLHUP)
            if not poller.poll(10000):
                sys.exit("barrier timed out")
            os.close(r)
        elif action == "ready":
            daemon.notify("READY=1")
        elif action == "status":
            daemon.notify("STATUS=%s" % args[i]); i += 1
        elif action == "notify":
            send(args[i].replace("\\n", "\n")); i += 1
        elif action == "raw":
            data = bytes.fromhex(args[i]); i += 1
            count = 0
            if i < len(args) and args[i].isdigit():
                count = int(args[i]); i += 1
            fds = [os.memfd_create("raw%d" % k) for k in range(count)]
            try:
                send(data, fds)
            except OSError as error:
                print("raw send failed: %s" % error, file=sys.stderr)
            for fd in fds:
                os.close(fd)
        elif action == "child":
            text = args[i]; i += 1
            pid = os.fork()
            if pid == 0:
                daemon.notify(text.replace("\\n", "\n"))
                # Stay alive until the supervisor has read it: a sender that is gone cannot be
                # attributed to its unit (systemd drops such messages too).
                r, w = os.pipe()
                send("BARRIER=1", [w])
                os.close(w)
                import select
                poller = select.poll()
                poller.register(r, select.POLLHUP)
                poller.poll(10000)
                os._exit(0)
            os.waitpid(pid, 0)
        elif action == "flood":
            count = int(args[i]); i += 1
            sock = notify_socket()
            sock.setblocking(True)
            for k in range(count):
                sock.send(b"STATUS=flood %d" % k)
            sock.close()
        elif action == "prepare":
            answer, log = args[i], args[i + 1]; i += 2
            def note(line):
                with open(log, "a") as out:
                    out.write(line + "\n")
            def on_prepare(signum, frame, answer=answer):
                note("prepare")
                if answer == "ok":
                    daemon.notify("X_FERRY_PREPARED=1")
                elif answer.startswith("refuse:"):
                    daemon.notify("X_FERRY_REFUSED=%s" % answer[len("refuse:"):])
            signal.signal(signal.SIGRTMIN + 4, on_prepare)
            signal.signal(signal.SIGRTMIN + 5, lambda signum, frame: note("resume"))
        elif action == "sleep":
            while True:
                time.sleep(3600)
        elif action == "raiselimit":
            import resource
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        elif action == "ignoreterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif action == "exit":
            sys.exit(int(args[i]))
        else:
            sys.exit("unknown action %s" % action)


main(sys.argv[1:])
