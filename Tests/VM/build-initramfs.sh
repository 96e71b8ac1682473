#!/usr/bin/env bash
# Build the VM test's initramfs: busybox-static, /init, ferryctl and the shared libraries it needs,
# plus (outer archive only) the kernel and inner archive that stage 1 kexecs into.
#
# usage: build-initramfs.sh FERRYCTL BZIMAGE OUTDIR
# writes OUTDIR/inner.cpio (what the kexec'd kernel boots) and OUTDIR/outer.cpio (what qemu boots).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ferryctl=$1 bzimage=$2 out=$3
busybox=${BUSYBOX:-/bin/busybox}
readelf -l "$busybox" | grep -q INTERP && { echo "build-initramfs: $busybox is not static (apt install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,kexec}
cp "$busybox" "$root/bin/busybox"
cp "$here/init.sh" "$root/init"
chmod +x "$root/init"
strip -o "$root/bin/ferryctl" "$ferryctl"
# The libraries the binary needs, at the paths the dynamic loader looks in.
ldd "$ferryctl" | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}' | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
interp=$(readelf -l "$ferryctl" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
mkdir -p "$root$(dirname "$interp")"
cp -L "$interp" "$root$interp"

mkdir -p "$out"
(cd "$root" && find . -path ./kexec -prune -o -print | cpio -o -H newc --quiet) > "$out/inner.cpio"
kexec_root=$(mktemp -d)
mkdir -p "$kexec_root/kexec"
cp "$bzimage" "$kexec_root/kexec/bzImage"
cp "$out/inner.cpio" "$kexec_root/kexec/initrd.cpio"
(cd "$kexec_root" && find . | cpio -o -H newc --quiet) > "$out/kexec.cpio"
rm -rf "$kexec_root"
cat "$out/inner.cpio" "$out/kexec.cpio" > "$out/outer.cpio"
rm "$out/kexec.cpio"
echo "initramfs: inner $(du -h "$out/inner.cpio" | cut -f1), outer $(du -h "$out/outer.cpio" | cut -f1)" >&2
