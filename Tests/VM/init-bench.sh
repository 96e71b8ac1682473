#!/bin/busybox sh
# /init of the VM benchmark: ferryd becomes PID 1; bench-driver.sh, started first in the
# background, stores N fds, runs the bare loop, and kexecs, once per size (see run-vm-bench.sh).
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /tmp /dev
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1
export SWIFT_DETERMINISTIC_HASHING=1
export SWIFT_BACKTRACE=enable=no
mkdir -p /etc/ferry/system
/bin/bench-driver.sh </dev/null &
# The kernel's default of 4,096 open files would cut the 5,000-fd stage short (MSG_CTRUNC in
# ferryd, EMFILE in the bare loop); ferryd and every service inherit this.
ulimit -n 65536
exec /bin/ferryd --log-level info
