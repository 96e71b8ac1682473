#!/usr/bin/env bash
# Build a VM test initramfs: busybox-static, an /init script, the given programs and the shared
# libraries they need; plus (outer archive only) the kernel and the inner archive to kexec into.
#
# usage: build-initramfs.sh INIT BZIMAGE OUTDIR PROGRAM...
#   INIT     the script that becomes /init
#   PROGRAM  files copied (stripped if ELF) into /bin
# writes OUTDIR/inner.cpio (what the kexec'd kernel boots) and OUTDIR/outer.cpio (what qemu boots).
set -euo pipefail
init=$1 bzimage=$2 out=$3
shift 3
busybox=${BUSYBOX:-/bin/busybox}
readelf -l "$busybox" | grep -q INTERP && { echo "build-initramfs: $busybox is not static (apt install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# mktemp makes it 0700; as the image's / it must let unprivileged services (User=65534) reach /bin.
chmod 755 "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc/ferry/system}
cp "$busybox" "$root/bin/busybox"
cp "$init" "$root/init"
chmod +x "$root/init"
for program in "$@"; do
  name=$(basename "$program")
  if readelf -h "$program" >/dev/null 2>&1; then
    strip -o "$root/bin/$name" "$program"
    # The libraries it needs, at the paths the dynamic loader looks in.
    ldd "$program" | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}' | while read -r lib; do
      [ -n "$lib" ] || continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
    interp=$(readelf -l "$program" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    if [ -n "$interp" ]; then mkdir -p "$root$(dirname "$interp")"; cp -L "$interp" "$root$interp"; fi
  else
    cp "$program" "$root/bin/$name"
    chmod +x "$root/bin/$name"
  fi
done

mkdir -p "$out"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$out/inner.cpio"
kexec_root=$(mktemp -d)
chmod 755 "$kexec_root"  # its "." entry, extracted last, sets the mode of / in the first boot
mkdir -p "$kexec_root/kexec"
cp "$bzimage" "$kexec_root/kexec/bzImage"
cp "$out/inner.cpio" "$kexec_root/kexec/initrd.cpio"
(cd "$kexec_root" && find . | cpio -o -H newc --quiet) > "$out/kexec.cpio"
rm -rf "$kexec_root"
cat "$out/inner.cpio" "$out/kexec.cpio" > "$out/outer.cpio"
rm "$out/kexec.cpio"
echo "initramfs ($(basename "$init")): inner $(du -h "$out/inner.cpio" | cut -f1), outer $(du -h "$out/outer.cpio" | cut -f1)" >&2
