#!/bin/bash
# The systemd VM test's root filesystem booted with ferryd as PID 1 (FERRY_SD_INIT=ferryd), for the
# side-by-side blackout against systemd as PID 1: the same kernel, command line (plus init=),
# qemu flags, disk and client. Run by ferryd as ferry-vm-driver.service. Reports on /dev/ttyS1 in
# guest-driver.sh's format (FERRY-SD check|observe|info|stage ...).
# Stage 1: the client stores its fds under ferryd; the kernel is loaded (kexec-tools, as the
# systemd side does), then `ferryctl kexec`. Stage 2: the client gets its fds back; power off.
set -u
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
. /etc/ferry-vm/settings            # FDS, SIZE, SESSION
results=/dev/ttyS1
[ -c "$results" ] || results=/dev/console
say() { echo "FERRY-SD $*" > "$results"; echo "FERRY-SD $*"; }
check() { # name, expected, actual
  if [ "$2" = "$3" ]; then say "check $1 PASS $3"; else say "check $1 FAIL expected '$2', got '$3'"; fi
}
wait_until() { # SECONDS COMMAND...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge $deadline ] && return 1; sleep 0.2; done
}
status() { ferryctl show ferry-client.service -p StatusText --value 2>/dev/null; }
settled() { case $(status) in stored*|verified*|FAILED*|lost*) return 0 ;; *) return 1 ;; esac; }
stage=1
grep -q 'ferry_stage=2' /proc/cmdline && stage=2
say "stage $stage start: ferryd as PID 1 ($(cat /proc/1/comm)), kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"
check pid1-is-ferryd ferryd "$(cat /proc/1/comm)"

if [ $stage = 1 ]; then
  wait_until 120 settled
  expected="stored $FDS fds of $SIZE bytes"
  [ "${SESSION:-0}" = 1 ] && expected="$expected and session"
  check ferryd-client-stored "$expected" "$(status)"
  cmdline="$(cat /proc/cmdline) ferry_stage=2"
  kexec -s -l /boot/ferry/bzImage --append="$cmdline" > /tmp/kexec.log 2>&1 ||
    say "info kexec -s -l failed: $(tr '\n' ' ' < /tmp/kexec.log)"
  check kexec-loaded 1 "$(cat /sys/kernel/kexec_loaded 2>/dev/null)"
  say "stage 1 kexec: ferryctl kexec"
  echo "<5>ferry-vm: kexec requested" > /dev/kmsg
  ferryctl kexec > /tmp/ferryctl-kexec.log 2>&1 ||
    check ferryctl-kexec accepted "exit $?: $(tr '\n' ' ' < /tmp/ferryctl-kexec.log)"
  sleep 600
  say "stage 1: still running 600 s after ferryctl kexec"
  exit 1
fi

wait_until 120 settled
expected="verified $FDS of $FDS fds, $((FDS * SIZE)) bytes"
[ "${SESSION:-0}" = 1 ] && expected="$expected and session"
check ferryd-client-verified-after-kexec "$expected" "$(status)"
say "done"
sync
kill -TERM 1     # ferryd as PID 1 powers off
sleep 60
