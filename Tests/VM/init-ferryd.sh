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
# A long-running service whose unit file is part of the image, so it exists in both boots: it is
# started again after the restore and gives the "first service ready" time.
mkdir -p /etc/ferry/system
cat > /etc/ferry/system/cache.service <<UNIT
[Service]
Type=notify
ExecStart=/bin/ferryctl demo-service cache --size 1048576 --seed 5
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
UNIT
# Enabled, so ferryd starts it on every boot with no driver asking (WantedBy= + the .wants link).
cat > /etc/ferry/system/boot-marker.service <<UNIT
[Unit]
Description=enabled: started at boot by ferryd alone
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo up >> /run/boot-marker'
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p /etc/ferry/system/multi-user.target.wants
ln -s ../boot-marker.service /etc/ferry/system/multi-user.target.wants/boot-marker.service
# The broker's policy: the unprivileged clients of the scenario (uid 65534) may have sessions.
cat > /etc/ferry/broker.conf <<POLICY
allow uid=65534 sessions=4 files=16 bytes=16M
allow uid=0
unclaimed-after 10min
POLICY
/bin/scenario-driver.sh </dev/null &
exec /bin/ferryd --log-level info
