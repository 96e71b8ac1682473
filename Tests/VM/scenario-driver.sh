#!/bin/busybox sh
# Drives reference-systemd.md §6 through ferryctl, with ferryd as PID 1 and a real kexec.
# Stage 1 (no ferry_stage=2): store, then kexec into the same kernel. Stage 2: check everything.
export PATH=/bin
export SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no
units=/run/ferry/system
result() { echo "FERRY-SCENARIO $1 $2 ${3:-}"; }
expect() { # name, expected, actual
  if [ "$2" = "$3" ]; then result "$1" PASS "$3"; else result "$1" FAIL "expected '$2', got '$3'"; fi
}
unit() { # name, mode, prefix, [max]
  cat > "$units/$1.service" <<UNIT
[Service]
Type=oneshot
ExecStart=/bin/ferryctl test-service $2 $3
FileDescriptorStoreMax=${4:-20}
FileDescriptorStorePreserve=yes
NotifyAccess=all
UNIT
}
# An unprivileged client of the broker (not LUOSession=: it asks ferryd over the broker socket)
# and an unprivileged unit with LUOSession=; both save a memfd before the kexec, verify it after.
brokered() { # name, save|verify
  cat > "$units/$1.service" <<UNIT
[Service]
Type=oneshot
User=65534
Group=65534
ExecStart=/bin/ferryctl session run vm -- /bin/ferryctl session memfd $2 vm --text guest-state-of-$1
UNIT
}
luounit() { # name, save|verify
  cat > "$units/$1.service" <<UNIT
[Service]
Type=oneshot
User=65534
Group=65534
ExecStart=/bin/ferryctl session memfd $2 vm --text unit-state-of-$1
LUOSession=vm
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
UNIT
}
count() { ferryctl fdstore "$1" --json | tr ',' '\n' | grep -c '"name"'; }
state() { ferryctl show "$1" -p ActiveState -p SubState --value | awk '{ printf "%s%s", sep, $0; sep = " " }'; }

# Wait for ferryd (PID 1) to answer.
i=0; while ! ferryctl status >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 300 ] && { result ferryd FAIL "no answer"; exit 1; }; sleep 0.1; done
mkdir -p $units
# The enabled unit came up on its own, on the cold boot and after the kexec alike.
i=0; while [ "$(state boot-marker.service)" != "active exited" ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done
expect boot-enabled-unit "active exited" "$(state boot-marker.service)"

if ! grep -q ferry_stage=2 /proc/cmdline; then
  echo "FERRY-VM scenario stage 1 $(uname -r)"
  unit test store luosession
  unit hijack store-hijack luosession
  unit late store late
  unit late-noreload store late-noreload
  unit late-zerofds store late-zerofds
  unit bulk store-many 1000 1000
  unit barebench bench-preserve 1000 4
  brokered vmm save
  luounit luovmm save
  ferryctl daemon-reload
  expect broker-save "inactive dead" "$(ferryctl start vmm.service >/dev/null; state vmm.service)"
  expect luosession-save "inactive dead-resources-pinned" "$(ferryctl start luovmm.service >/dev/null; state luovmm.service)"
  expect broker-held 1 "$(ferryctl session list --json | tr '{' '\n' | grep -c '"state":"held"')"
  expect start-cache "active running" "$(ferryctl start cache.service >/dev/null; state cache.service)"
  for u in test hijack late late-noreload late-zerofds bulk barebench; do expect "store-$u" "inactive dead-resources-pinned" "$(ferryctl start $u.service --json >/dev/null; state $u.service)"; done
  expect store-count-test 3 "$(count test.service)"
  expect store-count-bulk 1000 "$(count bulk.service)"
  # The late units' files live in /run: they are gone after the kexec (placeholders then).
  echo "FERRY-VM scenario kexec"
  ferryctl kexec --kernel /kexec/bzImage --initrd /kexec/initrd.cpio --append "$(cat /proc/cmdline) ferry_stage=2"
  result kexec FAIL "ferryctl kexec returned: $?"
  exit 1
fi

echo "FERRY-VM scenario stage 2 $(uname -r)"
dmesg | grep -E 'luo: Retrieved' | sed 's/^/FERRY-VM dmesg: /'
ferryctl status --json | sed 's/^/FERRY-VM status: /'

expect kexec-count 1 "$(ferryctl status --json | tr ',' '\n' | grep kexecCount | tr -dc 0-9)"
i=0; while ! ferryctl show cache.service -p StatusText --value 2>/dev/null | grep -q 'verified'; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1; done
expect cache-verified "verified 1048576 bytes" "$(ferryctl show cache.service -p StatusText --value)"
ferryctl last-update | sed "s/^/FERRY-VM timings: /"
unit test check luosession
unit hijack check-hijack luosession
ferryctl daemon-reload
expect hijack-not-restored 0 "$(count hijack.service)"
expect check-test "inactive dead" "$(ferryctl start test.service >/dev/null; state test.service)"
expect broker-waiting 1 "$(ferryctl session list --json | tr '{' '\n' | grep -c '"state":"waiting"')"
brokered vmm verify
luounit luovmm verify
ferryctl daemon-reload
expect broker-verify "inactive dead" "$(ferryctl start vmm.service >/dev/null; state vmm.service)"
expect broker-retrieved 1 "$(ferryctl session list --json | tr '{' '\n' | grep -c '"state":"retrieved"')"
expect luosession-verify "inactive dead-resources-pinned" "$(ferryctl start luovmm.service >/dev/null; state luovmm.service)"
expect check-hijack "inactive dead" "$(ferryctl start hijack.service >/dev/null; state hijack.service)"
expect late-placeholder 3 "$(count late.service)"
unit late check late
ferryctl daemon-reload
expect late-after-reload 3 "$(count late.service)"
ferryctl daemon-reexec
expect late-after-reexec 3 "$(count late.service)"
expect check-late "inactive dead" "$(ferryctl start late.service >/dev/null; state late.service)"
expect late-noreload-placeholder 3 "$(count late-noreload.service)"
unit late-noreload check late-noreload
expect check-late-noreload "inactive dead" "$(ferryctl start late-noreload.service >/dev/null; state late-noreload.service)"
cat > $units/late-zerofds.service <<UNIT
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'test "\${LISTEN_FDS:-0}" -eq 0'
FileDescriptorStoreMax=0
UNIT
ferryctl daemon-reload
expect late-zerofds-dropped 0 "$(count late-zerofds.service)"
expect check-late-zerofds "inactive dead" "$(ferryctl start late-zerofds.service >/dev/null; state late-zerofds.service)"
expect bulk-restored 1000 "$(count bulk.service)"
unit barebench bench-retrieve 1000 4
ferryctl daemon-reload
expect bare-bench-retrieved "inactive dead" "$(ferryctl start barebench.service >/dev/null; state barebench.service)"
unit bulk check-many 1000 1000
ferryctl daemon-reload
expect check-bulk "inactive dead-resources-pinned" "$(ferryctl start bulk.service >/dev/null; state bulk.service)"
# Process tracking: with cgroup v2, a process that left the service's process group (setsid) is
# still attributed to it and stopped with it.
cat > $units/escape.service <<'UNIT'
[Service]
Type=simple
NotifyAccess=all
ExecStart=/bin/sh -c 'setsid /bin/ferryctl test-service notify escaped; setsid sleep 1000 & echo $! > /run/escaped.pid; sleep 1000'
UNIT
ferryctl daemon-reload
ferryctl start escape.service >/dev/null
i=0; while ! ferryctl show escape.service -p StatusText --value | grep -q '^escaped'; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.1; done
expect escaped-notify-attributed escaped "$(ferryctl show escape.service -p StatusText --value)"
ferryctl stop escape.service >/dev/null
sleep 0.2
expect escaped-process-stopped gone "$(if [ -d /proc/$(cat /run/escaped.pid) ]; then echo alive; else echo gone; fi)"
echo "FERRY-SCENARIO done"
kill -INT 1  # ferryd as PID 1 stops everything and restarts: qemu -no-reboot exits
