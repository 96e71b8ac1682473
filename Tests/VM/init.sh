#!/bin/busybox sh
# /init of the VM test: stage 1 runs the conformance table against the real kernel and kexecs into
# the same kernel from Swift; stage 2 (ferry_stage=2 on the command line) checks what came back.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec >/dev/console 2>&1
# Kernel messages stay in the ring buffer, off the console: a late one (the clocksource watchdog
# under a loaded TCG host) once landed inside a result line and the parser missed the result.
dmesg -n 1
# A fixed hash seed avoids blocking in getrandom() before the kernel's pool is ready.
export SWIFT_DETERMINISTIC_HASHING=1
export SWIFT_BACKTRACE=enable=no

if grep -q 'ferry_stage=2' /proc/cmdline; then
  echo "FERRY-VM stage 2 $(uname -r)"
  dmesg | grep -E 'KHO|luo' | sed 's/^/FERRY-VM dmesg: /'
  /bin/ferryctl conformance --kernel --phase 2
  echo "FERRY-VM stage 2 exit $?"
else
  echo "FERRY-VM stage 1 $(uname -r)"
  /bin/ferryctl conformance --kernel --phase 1 --kexec-kernel /kexec/bzImage --kexec-initrd /kexec/initrd.cpio \
    --kexec-append "$(cat /proc/cmdline) ferry_stage=2"
  # Only reached when the kexec did not happen.
  echo "FERRY-VM stage 1 exit $? (no kexec)"
fi
echo "FERRY-VM done"
sync
reboot -f
