#!/bin/busybox sh
# /init of the VM scenario test: ferryd becomes PID 1 (it mounts /proc, /sys, /dev, /run itself);
# before that, a driver is started in the background that runs the scenario through ferryctl.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /tmp /dev
mount -t proc proc /proc
# /dev now, for the console and the driver's stdin; ferryd mounts the rest (and tolerates this one).
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1
export SWIFT_DETERMINISTIC_HASHING=1
export SWIFT_BACKTRACE=enable=no
/bin/scenario-driver.sh </dev/null &
exec /bin/ferryd --log-level info
