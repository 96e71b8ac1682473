#!/usr/bin/env bash
# The conformance table against a real LUO kernel of any series Debian packages, across a real
# kexec, compared case by case with the emulator's profile of the same level. run-vm-test.sh does
# this for 7.2 (plus the ferryd scenario); this script runs the table alone for the series given.
#
# usage: Tests/VM/run-conformance.sh [SERIES SUITE]     (default: 7.3 trixie-backports)
#   e.g. Tests/VM/run-conformance.sh 7.2 sid
# Builds the kernel with Tests/VM/build-kernel.sh (cached by version and configuration hash) from
# the same Tests/VM/kernel/ferry.config. FERRY_VM_CACHE: kernel cache folder (default
# /var/cache/ferry-vm). FERRY_VM_TIMEOUT: seconds for qemu (600). FERRY_VM_KEEP=1 keeps the work folder.
# Prints the comparison, one line per case, and 'vm-conformance: N passed, N failed'; exits non-zero
# if any case fails on the kernel or the kernel disagrees with the emulator.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
series=${1:-7.3} suite=${2:-trixie-backports}
cd "$repo"
start=$(date +%s)

echo "vm-conformance $series: building ferryctl (release, static Swift runtime)"
swift build -c release --static-swift-stdlib --product ferryctl 2>&1 | tail -n 1
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/ferryctl"

echo "vm-conformance $series: kernel from linux-source-$series ($suite)"
kernel_start=$(date +%s)
kernel=$("$here/build-kernel.sh" "$series" "$suite" | tail -n 1)
echo "vm-conformance $series: kernel $(cat "$(dirname "$kernel")/version" 2>/dev/null || echo '?') ready in $(( $(date +%s) - kernel_start )) s"
built=$(date +%s)

work=$(mktemp -d /tmp/ferry-vm-conformance.XXXXXX)
[ "${FERRY_VM_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
"$here/build-initramfs.sh" "$here/init.sh" "$kernel" "$work" "$bin"

echo "vm-conformance $series: the emulator's answers (profile $series)"
"$bin" conformance --emulated "$series" > "$work/emulator.log" 2>&1 || true

echo "vm-conformance $series: booting qemu (TCG)"
booted=$(date +%s)
timeout "${FERRY_VM_TIMEOUT:-600}" qemu-system-x86_64 -m 2G -smp 2 -accel tcg -cpu max -display none \
  -monitor none -no-reboot -serial "file:$work/serial.log" \
  -kernel "$kernel" -initrd "$work/outer.cpio" \
  -append "console=ttyS0 panic=-1 kho=on liveupdate=on" || echo "vm-conformance: qemu ended with status $?"
finished=$(date +%s)

tr -d '\r' < "$work/serial.log" | grep -a -E '^(FERRY-VM|== |probe:|conformance:|loading|rebooting)|KHO: found|luo: Retrieved|KHO: exec from' || true
if ! grep -a -q 'FERRY-VM stage 2' "$work/serial.log"; then
  echo "vm-conformance: stage 2 never ran (no kexec?); last lines of the serial log:"
  tail -n 40 "$work/serial.log" | tr -d '\r'
fi
# The level each side ran: the kernel's comes from its probe, the emulator's from the profile.
grep -a -E '^(probe:|== )' "$work/emulator.log" | head -n 2 | sed 's/^/emulator: /' || true
status=0
python3 "$here/compare-results.py" "$work/serial.log" "$work/emulator.log" || status=1
echo "vm-conformance $series: build $((built - start)) s, qemu $((finished - booted)) s, total $((finished - start)) s"
[ "${FERRY_VM_KEEP:-0}" = 1 ] && echo "vm-conformance: logs kept in $work"
exit $status
