#!/usr/bin/env bash
# Build (or reuse) a Debian root filesystem with a real systemd as PID 1, for the systemd VM test.
# debootstrap (minbase + systemd) from the archive the machine's own apt uses, trimmed, with the
# services a test VM does not need masked. Cached as a tarball keyed by suite and this script's
# hash, so changing Ferry never runs debootstrap again; the per-run disk image is made from it by
# run-systemd-vm-test.sh.
#
# usage: build-rootfs.sh SUITE        SUITE: bookworm (systemd 252) or sid (systemd 262)
# prints the tarball's path on its last line; its systemd version is in the same path + .version.
# FERRY_VM_CACHE overrides the cache folder (default /var/cache/ferry-vm).
set -euo pipefail
suite=${1:?usage: build-rootfs.sh SUITE}
cache=${FERRY_VM_CACHE:-/var/cache/ferry-vm}
key=$(sha256sum < "$0" | cut -c1-16)
out=$cache/rootfs-$suite-$key.tar
if [ -f "$out" ] && [ -f "$out.version" ]; then
  echo "rootfs cached: $suite, systemd $(cat "$out.version")" >&2
  echo "$out"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "build-rootfs: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# The first Debian archive URI the machine itself uses (not the security one), as fetch-kernel-source.sh does.
uri=$(grep -h -E '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$uri" ]; then
  uri=$(grep -h -E '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$uri" ] || { echo "build-rootfs: no Debian archive found in the machine's apt sources" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/rootfs-build-$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
start=$(date +%s)
echo "build-rootfs: debootstrap $suite (minbase + systemd + kexec-tools); log in $work/debootstrap.log" >&2
# kexec-tools: the operator's way to load the next kernel before `systemctl kexec`.
if ! DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,libsystemd0,kexec-tools \
    "$suite" "$root" "$uri" > "$work/debootstrap.log" 2>&1; then
  echo "build-rootfs: debootstrap $suite failed; last lines of its log:" >&2
  tail -n 30 "$work/debootstrap.log" >&2
  [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
  exit 1
fi

# Trim what a test VM never reads.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian \
       "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*_* \
       "$root"/var/log/*.log "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true

# Mask what a test VM does not need and what would slow it down or wait for hardware: udev (no
# device units are needed: the kernel mounts the root), D-Bus and logind (systemctl talks to PID 1
# on its private socket), gettys (the serial console is for logs; the test reports on ttyS1),
# first-boot prompts, periodic timers, the kexec-tools init scripts (the test loads the kernel), and
# module loading (the test kernel has no modules, minbase no kmod).
mask() { for unit in "$@"; do ln -sf /dev/null "$root/etc/systemd/system/$unit"; done; }
mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \
     systemd-udev-settle.service systemd-hwdb-update.service \
     dbus.service dbus.socket systemd-logind.service systemd-logind-varlink.socket \
     getty@.service serial-getty@.service console-getty.service getty-static.service \
     systemd-firstboot.service systemd-random-seed.service \
     apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
     dpkg-db-backup.timer systemd-tmpfiles-clean.timer \
     kexec.service kexec-load.service modprobe@.service systemd-modules-load.service
ln -sf /usr/lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
# The journal in memory only: nothing to flush to the disk image, less I/O under TCG.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$root/etc/systemd/journald.conf.d/ferry-vm.conf"
echo ferry-vm > "$root/etc/hostname"
echo '# the root file system is mounted by the kernel (root=/dev/vda rw)' > "$root/etc/fstab"
# kexec-tools must not take over reboots.
[ -f "$root/etc/default/kexec" ] && sed -i 's/^LOAD_KEXEC=.*/LOAD_KEXEC=false/' "$root/etc/default/kexec"

version=$(chroot "$root" dpkg-query -W -f '${Version}' systemd)
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -cf "$out.tmp" .
echo "$version" > "$out.version.tmp"
mv "$out.tmp" "$out"
mv "$out.version.tmp" "$out.version"
# Trees of this suite made by other versions of this script are not used again.
for stale in "$cache"/rootfs-"$suite"-*.tar; do
  [ "$stale" = "$out" ] || rm -f "$stale" "$stale.version"
done
echo "build-rootfs: $suite with systemd $version in $(( $(date +%s) - start )) s, $(du -sh "$root" | cut -f1) unpacked, $(du -h "$out" | cut -f1) tarball" >&2
echo "$out"
