#!/usr/bin/env bash
# The VM benchmark: in one chain of real kexecs under qemu (TCG, LUO 7.2 kernel, ferryd as PID 1),
# ferryd's prepare and restore of N memfds next to the bare loop of the same LUO calls on N memfds,
# for each N; prints a table with the ratios and the issue-10 goal (<= 1.25x bare + 20 ms).
#
# usage: Tests/VM/run-vm-bench.sh   FERRY_VM_BENCH_SIZES (default 100,1000,5000), FERRY_VM_TIMEOUT (s)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
sizes=${FERRY_VM_BENCH_SIZES:-100,1000,5000}

echo "vm-bench: building ferryctl and ferryd (release, static Swift runtime)"
swift build -c release --static-swift-stdlib --product ferryctl 2>&1 | tail -n 1
swift build -c release --static-swift-stdlib --product ferryd 2>&1 | tail -n 1
bindir="$(swift build -c release --static-swift-stdlib --show-bin-path)"
kernel=$("$here/build-kernel.sh" 7.2 sid | tail -n 1)
work=$(mktemp -d /tmp/ferry-vm-bench.XXXXXX)
"$here/build-initramfs.sh" "$here/init-bench.sh" "$kernel" "$work" "$bindir/ferryd" "$bindir/ferryctl" "$here/bench-driver.sh"
echo "vm-bench: booting qemu (TCG), sizes $sizes; serial log in $work/serial.log"
start=$(date +%s)
timeout "${FERRY_VM_TIMEOUT:-1800}" qemu-system-x86_64 -m 2G -smp 2 -accel tcg -cpu max -display none \
  -monitor none -no-reboot -serial "file:$work/serial.log" \
  -kernel "$kernel" -initrd "$work/outer.cpio" \
  -append "console=ttyS0 panic=-1 kho=on liveupdate=on loglevel=4 ferry_bench_sizes=$sizes" || echo "vm-bench: qemu ended with status $?"
echo "vm-bench: qemu $(( $(date +%s) - start )) s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
tr -d '\r' < "$work/serial.log" | grep -a -E '^FERRY-BENCH|FERRY-VM bench|ferryd\[1\]: (warning|error|critical)|restore: mapping read|mapping of [0-9]+ bytes' | grep -av '^FERRY-BENCH record' || true
python3 "$here/vm-bench-table.py" "$work/serial.log"
