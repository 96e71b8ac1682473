#!/bin/bash
# The systemd VM test inside the guest, run by ferry-vm-test.service with systemd as PID 1.
# Reports one line per result on /dev/ttyS1 (the host's results log), never on the console:
#   FERRY-SD check NAME PASS|FAIL DETAIL     a verified fact; any FAIL fails the test
#   FERRY-SD observe NAME TEXT               what happened, recorded, never a failure
#   FERRY-SD info TEXT                       context for a reader of the log
# Stage 1 (first boot): systemd, /dev/liveupdate, ferryd and its client, the baseline client
# directly under systemd; then the same kernel is loaded and `systemctl kexec` is run.
# Stage 2 (ferry_stage=2 on the command line): what came back, then the machine is rebooted
# (qemu runs with -no-reboot, so that ends it).
set -u
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
. /etc/ferry-vm/settings            # FDS (how many memfds per client), SIZE (bytes each), SESSION (1: each client owns a LUO session)
and_session=""; [ "${SESSION:-0}" = 1 ] && and_session=" and session"
entries=$((FDS + ${SESSION:-0}))    # a client's store: its memfds and its own session
results=/dev/ttyS1
[ -c "$results" ] || results=/dev/console
say() { echo "FERRY-SD $*" > "$results"; echo "FERRY-SD $*"; }
check() { # name, expected, actual
  if [ "$2" = "$3" ]; then say "check $1 PASS $3"; else say "check $1 FAIL expected '$2', got '$3'"; fi
}
observe() { say "observe $1 $2"; }
# wait_until SECONDS COMMAND...: run COMMAND every 0.2 s until it succeeds or time runs out.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge $deadline ] && return 1; sleep 0.2; done
}
prop() { systemctl show -p "$2" --value "$1" 2>/dev/null; }
ferry_status() { ferryctl show "$1" -p StatusText --value 2>/dev/null; }  # $2: status (the only one used)
ferry_settled() { case $(ferry_status "$1") in verified*|FAILED*) return 0 ;; *) return 1 ;; esac; }
ferry_count() { ferryctl fdstore "$1" --json 2>/dev/null | grep -o '"name"' | wc -l; }
status_is_final() { # the client reported something other than its start
  local text; text=$("$@"); [ -n "$text" ] && [ "$text" != "-" ]
}
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }   # utime + stime
cpu_ticks_over() { # SECONDS PID: the CPU time PID used meanwhile, in clock ticks
  local before; before=$(cpu_ticks "$2"); sleep "$1"; echo $(( $(cpu_ticks "$2") - before ))
}
version=$(systemctl --version | awk 'NR == 1 { print $2 }')
stage=1
grep -q 'ferry_stage=2' /proc/cmdline && stage=2
grep -q 'ferry_stage=3' /proc/cmdline && stage=3
say "stage $stage start: systemd $version, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"

system_state() { systemctl is-system-running 2>/dev/null; }
settled() { case $(system_state) in running|degraded) return 0 ;; *) return 1 ;; esac; }
check_system_running() {
  wait_until 120 settled
  local state; state=$(system_state)
  check "system-running-$1" running "$state"
  [ "$state" = running ] || say "info failed units: $(systemctl --failed --no-legend --plain | awk '{ printf "%s ", $1 }')"
}
check_ferryd() {
  wait_until 60 sh -c '[ "$(systemctl is-active ferryd.service)" = active ]'
  check "ferryd-active-$1" active "$(systemctl is-active ferryd.service)"
  if ferryctl status > /tmp/ferryctl-status 2>&1; then
    check "ferryctl-status-$1" answered answered
  else
    check "ferryctl-status-$1" answered "exit $?: $(head -c 200 /tmp/ferryctl-status)"
  fi
  say "info ferryctl status: $(head -n 12 /tmp/ferryctl-status | tr -s ' ' | tr '\n' ';')"
}
fd_stores() { # every loaded service with a non-empty fd store in systemd, as UNIT=COUNT
  systemctl show -p Id -p NFileDescriptorStore '*.service' 2>/dev/null |
    awk 'BEGIN { RS = ""; FS = "\n" } {   # one block per unit, properties in any order
      id = ""; n = 0
      for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "Id") id = kv[2]; if (kv[1] == "NFileDescriptorStore") n = kv[2] }
      if (n > 0) printf "%s=%s ", id, n }'
}
client_pid_cgroup() { # the cgroup of the process that runs `ferry-vm-client serve NAME`
  local pid
  for pid in /proc/[0-9]*; do
    if tr '\0' ' ' < "$pid/cmdline" 2>/dev/null | grep -q "^/usr/local/bin/ferry-vm-client serve $1 "; then
      sed -n 's/^0:://p' "$pid/cgroup"; return
    fi
  done
  echo "(no such process)"
}

if [ $stage = 1 ]; then
  check pid1-is-systemd systemd "$(cat /proc/1/comm)"
  say "info systemd $(systemctl --version | head -n 1)"
  say "info Ferry's systemd units: $(cd /etc/systemd/system && for u in ferry*.service; do [ "$u" = ferry-vm-test.service ] || [ "$u" = ferry-vm-baseline.service ] || printf '%s (%s) ' "$u" "$(systemctl is-enabled "$u" 2>/dev/null)"; done)"
  check dev-liveupdate present "$( [ -c /dev/liveupdate ] && echo present || echo missing)"
  check_system_running boot-1
if [ "${PLAIN:-0}" != 1 ]; then  # ferryd installed (FERRY_SD_PLAIN=1: systemd alone, for the baseline)
  check_ferryd boot-1

  # (a) A libsystemd client under ferryd (ferryd itself a systemd service).
  ferryctl start ferry-client.service > /tmp/start.log 2>&1 || say "info ferryctl start ferry-client.service: $(tr '\n' ' ' < /tmp/start.log)"
  wait_until 60 status_is_final ferry_status ferry-client.service status
  check ferryd-client-stored "stored $FDS fds of $SIZE bytes$and_session" "$(ferry_status ferry-client.service status)"
  check ferryd-client-store-count "$entries" "$(ferry_count ferry-client.service)"
  ferryctl restart ferry-client.service > /dev/null 2>&1
  wait_until 60 ferry_settled ferry-client.service
  check ferryd-client-restart-verified "verified $FDS of $FDS fds, $((FDS * SIZE)) bytes$and_session" "$(ferry_status ferry-client.service status)"
  observe ferryd-client-cgroup "$(client_pid_cgroup ferry-client) (ferryd.service is in $(prop ferryd.service ControlGroup))"
  # What ferryd costs the machine while its units idle (a loop that spins would slow every boot).
  observe ferryd-idle-cpu "$(cpu_ticks_over 3 "$(prop ferryd.service MainPID)") clock ticks of CPU in 3 s (PID 1: $(cpu_ticks_over 3 1))"
  observe ferryd-pushed-to-systemd "ferryd.service's own store holds $(prop ferryd.service NFileDescriptorStore) fd(s) (ferry-client.service has $FDS)"

fi
  # (b) The baseline: the same client directly under systemd, started at boot (not there with
  # BASELINE=0, where a boot runs only the client under ferryd, for compare-blackout.sh).
if [ "${BASELINE:-1}" = 1 ]; then
  wait_until 60 status_is_final prop ferry-vm-baseline.service StatusText
  check baseline-stored "stored $FDS fds of $SIZE bytes$and_session" "$(prop ferry-vm-baseline.service StatusText)"
  check baseline-store-count "$entries" "$(prop ferry-vm-baseline.service NFileDescriptorStore)"
fi

  say "info systemd's fd stores before the kexec: $(fd_stores)"

if [ "${PLAIN:-0}" != 1 ]; then  # ferryd installed (FERRY_SD_PLAIN=1: systemd alone, for the baseline)
  # (d) A crash of ferryd loses nothing: systemd restarts it and hands back what it pushed up.
  before=$(prop ferryd.service MainPID)
  kill -9 "$before"
  wait_until 60 sh -c "[ \"\$(systemctl show -p MainPID --value ferryd.service)\" != $before ] && ferryctl status >/dev/null 2>&1"
  wait_until 30 sh -c "[ \"\$(ferryctl fdstore ferry-client.service --json 2>/dev/null | grep -o '\"name\"' | wc -l)\" = $entries ]"
  check ferryd-kill9-lost-nothing "$entries" "$(ferry_count ferry-client.service)"
  # The client starts again with what came back (its processes died with ferryd's cgroup) and runs
  # into the kexec, so that ferryd starts it by itself after the kexec (measure B through ferryd).
  ferryctl start ferry-client.service > /dev/null 2>&1
  wait_until 60 ferry_settled ferry-client.service
  check ferryd-client-verified-after-kill9 "verified $FDS of $FDS fds, $((FDS * SIZE)) bytes$and_session" "$(ferry_status ferry-client.service status)"

fi
  # Load the same kernel for the kexec, with the stage marker, the operator's way (kexec-tools).
  cmdline="$(cat /proc/cmdline) ferry_stage=2"
  if kexec -s -l /boot/ferry/bzImage --append="$cmdline" > /tmp/kexec.log 2>&1; then :; else
    say "info kexec -s -l failed: $(tr '\n' ' ' < /tmp/kexec.log)"
  fi
  check kexec-loaded 1 "$(cat /sys/kernel/kexec_loaded 2>/dev/null)"
  say "stage 1 kexec: systemctl kexec"
  # The request's moment in the kernel's log (printk clock), for the host to measure from.
  echo "<5>ferry-vm: kexec requested" > /dev/kmsg
  if ! systemctl --no-block kexec > /tmp/systemctl.log 2>&1; then
    check systemctl-kexec accepted "refused: $(tr '\n' ' ' < /tmp/systemctl.log)"
  fi
  sleep 600
  say "stage 1: still running 600 s after systemctl kexec"
  exit 1
fi

# Stage 3 (systemd older than 261 only): after `ferryctl kexec`, which asked systemd for the kexec.
if [ $stage = 3 ]; then
  check_system_running boot-3
  check_ferryd boot-3
  wait_until 120 ferry_settled ferry-client.service
  check ferryd-client-verified-after-ferryctl-kexec "verified $FDS of $FDS fds, $((FDS * SIZE)) bytes$and_session" "$(ferry_status ferry-client.service status)"
  # ferryd was killed in the middle of this restore (the drop-in of stage 2): systemd started it
  # again, and it carried the restore on from the sessions systemd held for it.
  check ferryd-died-during-restore yes "$( [ -e /run/ferry-vm-died-once ] && echo yes || echo no)"
  check restore-carried-on-after-crash yes "$(journalctl -b -u ferryd.service -o cat --no-pager 2>/dev/null | grep -q 'carrying it on from the' && echo yes || echo no)"
  observe ferryd-restarts "$(prop ferryd.service NRestarts)"
  check ferryd-store-above-after-crash "$entries" "$(ferryctl fdstore ferry-client.service --json 2>/dev/null | grep -o '"name"' | wc -l)"
  say "info ferryd's log: $(journalctl -b -u ferryd.service -o cat --no-pager 2>/dev/null | grep -E 'LUO session|restored|took back' | tail -n 4 | tr '\n' ';')"
  say "done"
  sync
  systemctl --force --force reboot
  exit 0
fi

# Stage 2: the kernel after the kexec.
say "info $(dmesg 2>/dev/null | grep -E 'luo: Retrieved|KHO: found' | sed 's/^\[ *[0-9.]*\] //' | tr '\n' ';')"
check_system_running boot-2

# (b) The baseline: systemd 261+ carries its store across the kexec; older ones do not.
if [ "${BASELINE:-1}" = 1 ]; then
  wait_until 120 status_is_final prop ferry-vm-baseline.service StatusText
  baseline=$(prop ferry-vm-baseline.service StatusText)
  if [ "$version" -ge 261 ]; then
    check baseline-verified-after-kexec "verified $FDS of $FDS fds, $((FDS * SIZE)) bytes$and_session" "$baseline"
  else
    observe baseline-after-kexec "systemd $version: $baseline"
  fi
fi
[ "$version" -ge 261 ] && check kexec-count 1 "$(systemctl show -p KExecCount --value)"
for property in PreviousShutdownStartTimestampMonotonic PreviousShutdownFinishTimestampMonotonic \
                PreviousShutdownLateStartTimestampMonotonic PreviousShutdownLateFinishTimestampMonotonic; do
  value=$(systemctl show -p "$property" --value 2>/dev/null)
  [ -n "$value" ] && say "info $property=$value"
done
say "info systemd-analyze time: $(systemd-analyze time 2>/dev/null | tr -s ' \n' ' ')"
say "info systemd's fd stores after the kexec: $(fd_stores)"
say "info slowest units: $(systemd-analyze blame --no-pager 2>/dev/null | head -n 6 | tr -s ' \n' ' ')"

if [ "${PLAIN:-0}" != 1 ]; then  # ferryd installed (FERRY_SD_PLAIN=1: systemd alone, for the baseline)
# (c) ferryd's units across a plain `systemctl kexec` (after the kill -9 above): every byte back.
check_ferryd boot-2
check ferryd-client-entries-after-kexec "$entries" "$(ferry_count ferry-client.service)"
# It ran before the kexec, so ferryd starts it again by itself.
wait_until 120 ferry_settled ferry-client.service
check ferryd-client-verified-after-kexec "verified $FDS of $FDS fds, $((FDS * SIZE)) bytes$and_session" "$(ferry_status ferry-client.service status)"
ferry_log=$(journalctl -b -u ferryd.service -o cat --no-pager 2>/dev/null)
if [ "$version" -ge 261 ]; then
  # systemd's session carried them: ferryd took them back from LISTEN_FDS and never used LUO itself.
  check carried-by-systemd yes "$(echo "$ferry_log" | grep -q 'took back .* stored fd(s) from the manager above' && echo yes || echo no)"
  check ferryd-used-no-luo-session yes "$(echo "$ferry_log" | grep -q "found LUO session 'ferry'" && echo no || echo yes)"
else
  # systemd 252 carries nothing: ferryd preserved them in its own session and held it through the shutdown.
  check carried-by-ferryd-session yes "$(echo "$ferry_log" | grep -q "found LUO session 'ferry'" && echo yes || echo no)"
fi
fi
say "info ferryctl last-update: $(ferryctl last-update 2>&1 | head -n 14 | tr -s ' ' | tr '\n' ';')"
observe ferryd-store-above-after-kexec "ferryd.service's own store holds $(prop ferryd.service NFileDescriptorStore) fd(s)"
say "info ferryd's log: $(journalctl -b -u ferryd.service -o cat --no-pager 2>/dev/null | tail -n 8 | tr '\n' ';')"

if [ "$version" -lt 261 ] && [ "${PLAIN:-0}" != 1 ]; then
  # The other way in: ferryctl kexec loads the kernel, ferryd preserves and asks systemd. In the
  # next boot ferryd dies after retrieving its third fd (once: the marker is on /run); systemd's
  # Restart= starts it again, with the retrieved sessions it pushed up (issue 9's last window).
  mkdir -p /etc/systemd/system/ferryd.service.d
  printf '[Service]\nEnvironment=FERRYD_TEST_DIE_AT=retrieve-fd-3 FERRYD_TEST_DIE_ONCE=/run/ferry-vm-died-once\n' \
    > /etc/systemd/system/ferryd.service.d/die-during-restore.conf
  sync
  say "stage 2 kexec: ferryctl kexec"
  ferryctl kexec --kernel /boot/ferry/bzImage --append "$(cat /proc/cmdline) ferry_stage=3" > /tmp/ferryctl-kexec.log 2>&1 ||
    check ferryctl-kexec accepted "exit $?: $(tr '\n' ' ' < /tmp/ferryctl-kexec.log)"
  sleep 600
  say "stage 2: still running 600 s after ferryctl kexec"
  exit 1
fi
say "done"
sync
systemctl --force --force reboot
