#!/usr/bin/env bash
# The systemd VM test: a real systemd as PID 1 (Debian bookworm: 252, sid: 262) on the VM test's
# kernel, root on ext4 over virtio-blk, with ferryd as a systemd service (contrib/systemd/ferryd.service)
# and a libsystemd client under it, a baseline client directly under systemd, and a plain
# `systemctl kexec` into the same kernel. The guest side is guest-driver.sh; it reports on the
# second serial port, this script prints one line per check and closes with
# `vm-systemd: N passed, N failed`.
#
# usage: Tests/VM/systemd/run-systemd-vm-test.sh [SUITE...]      (default: bookworm sid)
# FERRY_VM_CACHE: kernel and root filesystem cache (default /var/cache/ferry-vm).
# FERRY_VM_TIMEOUT: seconds per qemu run (default 600). FERRY_SD_FDS: memfds per client (10).
# FERRY_SD_SIZE: bytes per memfd (1048576). FERRY_VM_KEEP=1 keeps the disk images.
# FERRY_SD_APPEND: more kernel arguments (both kernels), e.g. initcall_debug or systemd.log_level=debug.
# FERRY_VM_SMP: virtual CPUs (default 2; compare-blackout.sh uses 1, whose timings vary less).
# FERRY_SD_SESSION=0: the clients own no LUO session of their own (default 1: each owns one).
# FERRY_SD_PLAIN=1: none of Ferry's units, systemd alone (the baseline of compare-blackout.sh).
# FERRY_SD_BASELINE=0: no baseline client directly under systemd, only the one under ferryd, so that
# a boot does the same client work as with FERRY_SD_PLAIN=1 (compare-blackout.sh's ferry mode).
# FERRY_SD_INIT=ferryd: the same disk and kernel booted with init=/usr/local/bin/ferryd, the client
# under ferryd as PID 1 (pid1-driver.sh), for the side-by-side blackout against systemd as PID 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vm=$(cd "$here/.." && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm sid)
fds=${FERRY_SD_FDS:-10} size=${FERRY_SD_SIZE:-1048576} limit=${FERRY_VM_TIMEOUT:-600}
session=${FERRY_SD_SESSION:-1} init=${FERRY_SD_INIT:-systemd}
baseline=${FERRY_SD_BASELINE:-1}; [ "${FERRY_SD_PLAIN:-0}" = 1 ] && baseline=1  # systemd alone: the baseline is its client
client_session=""; [ "$session" = 1 ] && client_session=session
init_argument=""; [ "$init" = ferryd ] && init_argument="init=/usr/local/bin/ferryd"
start=$(date +%s)
work=$(mktemp -d /tmp/ferry-systemd-vm.XXXXXX)
echo "vm-systemd: logs in $work"
passed=0 failed=0 summarized=0
# Whatever stops the script early (a build that fails, a missing tool) still ends with the summary.
trap 'if [ $summarized = 0 ]; then echo "vm-systemd: stopped before the end (see above)"; echo "vm-systemd: $passed passed, $((failed + 1)) failed"; fi' EXIT

for tool in qemu-system-x86_64 mkfs.ext4 debootstrap gcc; do
  command -v $tool >/dev/null || { echo "vm-systemd: $tool is missing (apt-get install qemu-system-x86 e2fsprogs debootstrap gcc)"; exit 1; }
done
[ -f /usr/include/systemd/sd-daemon.h ] || { echo "vm-systemd: libsystemd-dev is missing"; exit 1; }

echo "vm-systemd: building ferryctl and ferryd (release, static Swift runtime) and the client service"
swift build -c release --static-swift-stdlib --product ferryctl 2>&1 | tail -n 1
swift build -c release --static-swift-stdlib --product ferryd 2>&1 | tail -n 1
bindir="$(swift build -c release --static-swift-stdlib --show-bin-path)"
gcc -O2 -Wall -Wextra -Werror -o "$work/ferry-vm-client" "$here/fdstore-client.c" -lsystemd

echo "vm-systemd: kernel"
kernel=$("$vm/build-kernel.sh" 7.2 sid | tail -n 1)
built=$(date +%s)

# result SUITE NAME PASS|FAIL DETAIL
result() {
  echo "vm-systemd $1: $3 $2 ${4:-}"
  if [ "$3" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# make_image SUITE TARBALL IMAGE: the cached tree plus this build's binaries and the test's files.
make_image() {
  local suite=$1 tarball=$2 image=$3 root=$work/$1/root
  mkdir -p "$root"
  tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xf "$tarball"
  install -d "$root/usr/local/bin" "$root/usr/local/lib/ferry-vm" "$root/etc/ferry/system" "$root/etc/ferry-vm" "$root/boot/ferry"
  strip -o "$root/usr/local/bin/ferryd" "$bindir/ferryd"
  strip -o "$root/usr/local/bin/ferryctl" "$bindir/ferryctl"
  install -m 755 "$work/ferry-vm-client" "$root/usr/local/bin/ferry-vm-client"
  install -m 755 "$here/guest-driver.sh" "$here/pid1-driver.sh" "$root/usr/local/lib/ferry-vm/"
  install -m 644 "$kernel" "$root/boot/ferry/bzImage"
  printf 'FDS=%s\nSIZE=%s\nPLAIN=%s\nSESSION=%s\nBASELINE=%s\n' "$fds" "$size" "${FERRY_SD_PLAIN:-0}" "$session" "$baseline" > "$root/etc/ferry-vm/settings"
  local units=$root/etc/systemd/system
  # Every unit Ferry ships for systemd, enabled as its [Install] section says.
  local contrib wanted
  # FERRY_SD_PLAIN=1: none of them, to measure systemd alone in the same VM.
  for contrib in "$repo"/contrib/systemd/*.service; do
    [ "${FERRY_SD_PLAIN:-0}" = 1 ] && break
    install -m 644 "$contrib" "$units/$(basename "$contrib")"
    for wanted in $(sed -n 's/^WantedBy=//p' "$contrib"); do
      mkdir -p "$units/$wanted.wants"
      ln -sf "../$(basename "$contrib")" "$units/$wanted.wants/$(basename "$contrib")"
    done
  done
  # The test's only addition to them: their output on the console too, so that what ferryd and
  # ferryctl say during the first kernel's shutdown outlives the (volatile) journal.
  for contrib in "$repo"/contrib/systemd/*.service; do
    mkdir -p "$units/$(basename "$contrib").d"
    printf '[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n' > "$units/$(basename "$contrib").d/vm-test-console.conf"
  done
  cat > "$units/ferry-vm-baseline.service" <<UNIT
[Unit]
Description=Ferry VM test: a libsystemd client whose fd store systemd itself keeps

[Service]
Type=notify
ExecStart=/usr/local/bin/ferry-vm-client serve baseline $fds $size $client_session
FileDescriptorStoreMax=64
FileDescriptorStorePreserve=yes
NotifyAccess=main

[Install]
WantedBy=multi-user.target
UNIT
  cat > "$units/ferry-vm-test.service" <<UNIT
[Unit]
Description=Ferry VM test driver
After=ferryd.service ferry-vm-baseline.service

[Service]
Type=simple
ExecStart=/usr/local/lib/ferry-vm/guest-driver.sh
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
  cat > "$root/etc/ferry/system/ferry-client.service" <<UNIT
[Unit]
Description=Ferry VM test: a libsystemd client under ferryd

[Service]
Type=notify
ExecStart=/usr/local/bin/ferry-vm-client serve ferry-client $fds $size $client_session
FileDescriptorStoreMax=64
FileDescriptorStorePreserve=yes
UNIT
  mkdir -p "$units/multi-user.target.wants"
  for unit in ferry-vm-baseline.service ferry-vm-test.service; do
    [ "$unit" = ferry-vm-baseline.service ] && [ "$baseline" = 0 ] && continue
    ln -sf "../$unit" "$units/multi-user.target.wants/$unit"
  done
  if [ "$init" = ferryd ]; then
    # ferryd as PID 1 starts what its multi-user.target wants: the client and the driver.
    cat > "$root/etc/ferry/system/ferry-vm-driver.service" <<UNIT
[Unit]
Description=Ferry VM test driver under ferryd as PID 1

[Service]
Type=simple
ExecStart=/usr/local/lib/ferry-vm/pid1-driver.sh
UNIT
    mkdir -p "$root/etc/ferry/system/multi-user.target.wants"
    for unit in ferry-client.service ferry-vm-driver.service; do
      ln -sf "../$unit" "$root/etc/ferry/system/multi-user.target.wants/$unit"
    done
  fi
  local megabytes
  megabytes=$(( $(du -sm "$root" | cut -f1) + 256 ))
  mkfs.ext4 -q -F -L ferry-root -d "$root" "$image" "${megabytes}M"
  rm -rf "$root"
}

# measure SUITE: A and B from the serial console (the kernel's printk clock in each boot).
measure() {
  python3 - "$work/$1/console.log" "$1" <<'PY'
import re, sys
path, suite = sys.argv[1], sys.argv[2]
stamp = re.compile(r'\[\s*(\d+\.\d+)\] (.*)$')
boots, lines = [], []
for raw in open(path, errors="replace"):
    line = raw.replace("\r", "").rstrip("\n")
    if "Linux version " in line:
        boots.append([])
    if boots:
        # search, not match: ferryd as PID 1 writes to the same console, and a kernel line can
        # land after its text on one line.
        match = stamp.search(line)
        if match:
            boots[-1].append((float(match.group(1)), match.group(2)))
def first(boot, text):
    return next((t for t, message in boot if text in message), None)
if len(boots) >= 1:
    requested = first(boots[0], "ferry-vm: kexec requested")
    syscall = first(boots[0], "kexec_core: Starting new kernel")
    witness = "kernel's 'Starting new kernel'"
    if syscall is None:
        syscall, witness = first(boots[0], "Rebooting with kexec"), "systemd-shutdown's 'Rebooting with kexec.'"
    if requested is not None and syscall is not None:
        print(f"vm-systemd {suite}: measure A (kexec requested -> kexec syscall) {syscall - requested:.3f} s "
              f"(printk {requested:.3f} -> {syscall:.3f}, {witness})")
        for label, text in (("units stopped, PID 1 hands over to systemd-shutdown", "systemd-shutdown"),
                            ("fd stores serialized by PID 1", "fd store entries for LUO"),
                            ("preserved in LUO by systemd-shutdown", "Preserved fd stores in LUO")):
            at = first(boots[0], text)
            if at is not None:
                print(f"vm-systemd {suite}:   at +{at - requested:.3f} s: {label}")
    else:
        print(f"vm-systemd {suite}: measure A not available (request mark {requested}, kexec mark {syscall})")
    for t, message in boots[0]:
        if "Failed to preserve LUO fd" in message:
            print(f"vm-systemd {suite}: info {message}")
if len(boots) >= 2:
    for t, message in boots[1]:
        if message.startswith("ferry-vm-client baseline: verified"):
            monotonic = re.search(r"monotonic (\d+\.\d+)", message)
            print(f"vm-systemd {suite}: measure B (next kernel start -> baseline service verified its fds) {t:.3f} s "
                  f"(printk clock; the service's CLOCK_MONOTONIC: {monotonic.group(1) if monotonic else '?'} s)")
            break
    else:
        print(f"vm-systemd {suite}: measure B not available (the baseline service did not verify its fds)")
    for label, text in (("the kernel runs init", " as init process"),
                        ("systemd starts", "running in system mode"),
                        ("journald started", "Started systemd-journald.service")):
        at = first(boots[1], text)
        if at is not None:
            print(f"vm-systemd {suite}:   at {at:.3f} s: {label}")
    # The same client under ferryd (ferryd a service of systemd), started again by ferryd itself.
    ferried = first(boots[1], "ferry-vm-client ferry-client: verified")
    if ferried is not None:
        print(f"vm-systemd {suite}: measure B through ferryd (next kernel start -> ferryd's client verified its fds) {ferried:.3f} s")
    else:
        print(f"vm-systemd {suite}: measure B through ferryd not available")
PY
}

for suite in "${suites[@]}"; do
  dir=$work/$suite
  mkdir -p "$dir"
  echo "vm-systemd $suite: root filesystem"
  if ! tarball=$("$here/build-rootfs.sh" "$suite" | tail -n 1) || [ ! -f "$tarball" ]; then
    result "$suite" rootfs FAIL "build-rootfs.sh $suite failed"
    continue
  fi
  echo "vm-systemd $suite: systemd $(cat "$tarball.version")"
  image_start=$(date +%s)
  make_image "$suite" "$tarball" "$dir/root.img"
  echo "vm-systemd $suite: disk image $(du -h --apparent-size "$dir/root.img" | cut -f1) in $(( $(date +%s) - image_start )) s; booting qemu (TCG)"
  # Console: the first serial port, with TERM=dumb so that systemd 262 does not query the
  # (unanswering) serial terminal for its size and name at start, which costs about a second.
  qemu_start=$(date +%s)
  status=0
  # tsc=unstable: under TCG the switch from tsc-early to the refined TSC clocksource can land in
  # the middle of ACPI's PCI routing (_PRT) and jump the clock by 30 s; ACPICA then aborts the
  # method (AE_AML_LOOP_TIMEOUT), virtio-blk gets no interrupt and the boot hangs (seen twice).
  timeout "$limit" qemu-system-x86_64 -m 2G -smp "${FERRY_VM_SMP:-2}" -accel tcg -cpu max -display none -vga none -nic none \
    -monitor none -no-reboot \
    -serial "file:$dir/console.log" -serial "file:$dir/results.log" \
    -drive "file=$dir/root.img,format=raw,if=virtio,cache=unsafe" \
    -kernel "$kernel" \
    -append "root=/dev/vda rw rootwait console=ttyS0 TERM=dumb panic=-1 kho=on liveupdate=on systemd.minimum_uptime_sec=0 tsc=unstable $init_argument ${FERRY_SD_APPEND:-}" \
    > "$dir/qemu.log" 2>&1 || status=$?
  echo "vm-systemd $suite: qemu ran $(( $(date +%s) - qemu_start )) s"
  if [ "$init" = ferryd ]; then
    # ferryd as PID 1 leaves the disk clean: root read-only before the kexec and before power-off.
    remounts=$(grep -c 'EXT4-fs (vda): re-mounted .* ro' "$dir/console.log" || true)
    if [ "$remounts" -ge 2 ]; then result "$suite" root-read-only-before-kexec-and-power-off PASS "$remounts times"
    else result "$suite" root-read-only-before-kexec-and-power-off FAIL "re-mounted read-only $remounts time(s), expected 2"
    fi
    if fsck_out=$(e2fsck -fn "$dir/root.img" 2>&1); then result "$suite" filesystem-clean-after-ferryd PASS
    else result "$suite" filesystem-clean-after-ferryd FAIL "$(echo "$fsck_out" | tail -n 3 | tr '\n' ' ')"
    fi
  fi
  [ "${FERRY_VM_KEEP:-0}" = 1 ] || rm -f "$dir/root.img"
  tr -d '\r' < "$dir/results.log" > "$dir/results.txt" || true
  while read -r tag kind name verdict detail; do
    [ "$tag" = FERRY-SD ] || continue
    case $kind in
      check) result "$suite" "$name" "$verdict" "$detail" ;;
      observe) echo "vm-systemd $suite: observe $name $verdict $detail" ;;
      info) echo "vm-systemd $suite: info $name $verdict $detail" ;;
      stage) echo "vm-systemd $suite: stage $name $verdict $detail" ;;
    esac
  done < "$dir/results.txt"
  ok=1
  if [ $status = 124 ]; then result "$suite" qemu FAIL "timed out after $limit s"; ok=0
  elif [ $status != 0 ]; then result "$suite" qemu FAIL "exit status $status: $(tail -n 3 "$dir/qemu.log" | tr '\n' ' ')"; ok=0
  fi
  if grep -q '^FERRY-SD stage 2 start' "$dir/results.txt"; then result "$suite" kexec-reached-stage-2 PASS
  else result "$suite" kexec-reached-stage-2 FAIL "the guest never reported from the kernel after the kexec"; ok=0
  fi
  if [ "$suite" = bookworm ] && [ "${FERRY_SD_PLAIN:-0}" != 1 ] && [ "$init" = systemd ]; then
    if grep -q '^FERRY-SD stage 3 start' "$dir/results.txt"; then result "$suite" ferryctl-kexec-reached-stage-3 PASS
    else result "$suite" ferryctl-kexec-reached-stage-3 FAIL "the guest never reported after ferryctl kexec"; ok=0
    fi
  fi
  if grep -q '^FERRY-SD done' "$dir/results.txt"; then result "$suite" guest-finished PASS
  else result "$suite" guest-finished FAIL "the guest driver did not finish"; ok=0
  fi
  measure "$suite" || true
  # What Ferry's own units printed between the kexec request and the kernel switch.
  tr -d '\r' < "$dir/console.log" | awk '/ferry-vm: kexec requested/ { on = 1 } /Linux version/ && on { exit } on' |
    grep -a -i 'ferry' | grep -a -v 'FERRY-SD\|ferry-vm: kexec requested\|ferry-vm-' | tail -n 15 |
    sed "s/^/vm-systemd $suite: info while going down: /" || true
  if [ $ok = 0 ] || grep -q '^FERRY-SD check .* FAIL' "$dir/results.txt"; then
    echo "vm-systemd $suite: last lines of the serial console ($dir/console.log):"
    tail -n 40 "$dir/console.log" | tr -d '\r' | sed 's/^/    /'
    echo "vm-systemd $suite: last lines of the results port ($dir/results.txt):"
    tail -n 10 "$dir/results.txt" | sed 's/^/    /'
  fi
done

echo "vm-systemd: kernel $((built - start)) s (build included), total $(( $(date +%s) - start )) s; host load average now $(cut -d' ' -f1-3 /proc/loadavg) (timings under TCG depend on it); logs in $work"
echo "vm-systemd: $passed passed, $failed failed"
summarized=1
[ $failed = 0 ]
