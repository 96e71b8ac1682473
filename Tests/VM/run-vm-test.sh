#!/usr/bin/env bash
# The VM test: the conformance table against a real LUO kernel under qemu (TCG), across a real
# kexec made by ferryctl, compared case by case with the emulator's profile of the same level.
#
# usage: Tests/VM/run-vm-test.sh        (from anywhere; needs the packages .ci/run installs)
# FERRY_VM_CACHE: kernel cache folder (default /var/cache/ferry-vm). FERRY_VM_TIMEOUT: seconds (600).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
start=$(date +%s)

echo "vm-test: building ferryctl and ferryd (release, static Swift runtime)"
swift build -c release --static-swift-stdlib --product ferryctl 2>&1 | tail -n 1
swift build -c release --static-swift-stdlib --product ferryd 2>&1 | tail -n 1
bindir="$(swift build -c release --static-swift-stdlib --show-bin-path)"
bin="$bindir/ferryctl"

echo "vm-test: kernel"
kernel=$("$here/build-kernel.sh" 7.2 sid | tail -n 1)
built=$(date +%s)

work=$(mktemp -d /tmp/ferry-vm.XXXXXX)
"$here/build-initramfs.sh" "$here/init.sh" "$kernel" "$work" "$bin"

echo "vm-test: the emulator's answers (profile 7.2)"
"$bin" conformance --emulated 7.2 > "$work/emulator.log" 2>&1 || true

echo "vm-test: booting qemu (TCG); serial log in $work/serial.log"
booted=$(date +%s)
timeout "${FERRY_VM_TIMEOUT:-600}" qemu-system-x86_64 -m 2G -smp 2 -accel tcg -cpu max -display none \
  -monitor none -no-reboot -serial "file:$work/serial.log" \
  -kernel "$kernel" -initrd "$work/outer.cpio" \
  -append "console=ttyS0 panic=-1 kho=on liveupdate=on" || echo "vm-test: qemu ended with status $?"
finished=$(date +%s)

grep -a -E '^(FERRY-VM|== |probe:|conformance:|loading|rebooting)' "$work/serial.log" | tr -d '\r' || true
grep -a -E 'KHO: found|luo: Retrieved' "$work/serial.log" | tr -d '\r' || true
echo "vm-test: build $((built - start)) s, qemu $((finished - booted)) s, total $((finished - start)) s"
if ! grep -a -q 'FERRY-VM stage 2' "$work/serial.log"; then
  echo "vm-test: stage 2 never ran (no kexec?); last lines of the serial log:"
  tail -n 40 "$work/serial.log" | tr -d '\r'
fi
conformance=0
python3 "$here/compare-results.py" "$work/serial.log" "$work/emulator.log" > "$work/compare.txt" || conformance=1
cat "$work/compare.txt"

echo "vm-test: the live-update scenario with ferryd as PID 1 and a real kexec"
mkdir -p "$work/scenario"
"$here/build-initramfs.sh" "$here/init-ferryd.sh" "$kernel" "$work/scenario" "$bindir/ferryd" "$bin" "$here/scenario-driver.sh"
scenario_start=$(date +%s)
timeout "${FERRY_VM_TIMEOUT:-600}" qemu-system-x86_64 -m 2G -smp 2 -accel tcg -cpu max -display none \
  -monitor none -no-reboot -serial "file:$work/scenario.log" \
  -kernel "$kernel" -initrd "$work/scenario/outer.cpio" \
  -append "console=ttyS0 panic=-1 kho=on liveupdate=on" || echo "vm-test: qemu ended with status $?"
echo "vm-test: scenario qemu $(( $(date +%s) - scenario_start )) s"
tr -d '\r' < "$work/scenario.log" | grep -a -E '^(FERRY-VM|FERRY-SCENARIO)|ferryd\[1\]: (warning|error|critical)|luo: Retrieved' || true
passed=$(tr -d '\r' < "$work/scenario.log" | grep -a -c '^FERRY-SCENARIO .* PASS' || true)
failed=$(tr -d '\r' < "$work/scenario.log" | grep -a -c '^FERRY-SCENARIO .* FAIL' || true)
if ! tr -d '\r' < "$work/scenario.log" | grep -a -q '^FERRY-SCENARIO done'; then
  echo "vm-test: the scenario did not finish; last lines of its serial log:"
  tail -n 40 "$work/scenario.log" | tr -d '\r'
  failed=$((failed + 1))
fi
echo "vm-scenario: $passed passed, $failed failed"
vm_passed=$(grep -c '^vm-case .* PASS' "$work/compare.txt" || true)
vm_failed=$(grep -c '^vm-case .* FAIL' "$work/compare.txt" || true)
echo "vm-test: $((vm_passed + passed)) passed, $((vm_failed + failed)) failed"
[ "$conformance" = 0 ] && [ "$failed" = 0 ]
