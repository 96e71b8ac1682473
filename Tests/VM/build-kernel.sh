#!/usr/bin/env bash
# Build (or reuse) a minimal LUO kernel: x86_64 tinyconfig plus kernel/ferry.config.
# The bzImage is cached outside the clone, keyed by source version and configuration hash.
#
# usage: build-kernel.sh [SERIES SUITE]   (default 7.2 sid)
# prints the path of the bzImage on its last line.
# FERRY_VM_CACHE overrides the cache folder (default /var/cache/ferry-vm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
series=${1:-7.2} suite=${2:-sid}
cache=${FERRY_VM_CACHE:-/var/cache/ferry-vm}
fragment=$here/kernel/ferry.config

key=$(cat "$fragment" "$0" | sha256sum | cut -c1-16)
out=$cache/kernel-$series-$key
if [ -f "$out/bzImage" ]; then
  echo "kernel cached: $(cat "$out/version" 2>/dev/null) config $key" >&2
  echo "$out/bzImage"
  exit 0
fi

"$here/fetch-kernel-source.sh" "$series" "$suite" "$cache/src" >&2
src=$cache/src/linux-source-$series
build=$cache/build-$series-$key
mkdir -p "$build"
start=$(date +%s)
make -C "$src" O="$build" -s ARCH=x86_64 tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
make -C "$src" O="$build" -s ARCH=x86_64 olddefconfig >&2
# Every option of the fragment must have survived olddefconfig, or the kernel is not what we test.
missing=0
while read -r line; do
  case $line in CONFIG_*=y) grep -qx "$line" "$build/.config" || { echo "kernel config lacks $line" >&2; missing=1; } ;; esac
done < "$fragment"
[ $missing = 0 ] || exit 1
make -C "$src" O="$build" -s ARCH=x86_64 -j"$(nproc)" bzImage >&2
mkdir -p "$out"
cp "$build/arch/x86/boot/bzImage" "$out/bzImage"
cp "$build/.config" "$out/config"
make -C "$src" O="$build" -s kernelrelease > "$out/version"
echo "built kernel $(cat "$out/version") in $(( $(date +%s) - start )) s" >&2
rm -rf "$build"
echo "$out/bzImage"
