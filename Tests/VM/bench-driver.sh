#!/bin/busybox sh
# The VM benchmark's driver: for each size N in ferry_bench_sizes (kernel command line), in one
# chain of real kexecs, ferryd carries N memfds of one unit, and beside it a service runs the bare
# loop of the same LUO calls on N memfds of its own (create session + preserve before the kexec;
# retrieve + finish after it). Stage K stores size K and kexecs; stage K+1 reports it.
export PATH=/bin
export SWIFT_DETERMINISTIC_HASHING=1 SWIFT_BACKTRACE=enable=no
units=/run/ferry/system
line() { echo "FERRY-BENCH $*"; }
unit() { # name, mode, count
  cat > "$units/$1.service" <<UNIT
[Service]
Type=oneshot
ExecStart=/bin/ferryctl test-service $2 $3
FileDescriptorStoreMax=$(( $3 > 4 ? $3 : 4 ))
FileDescriptorStorePreserve=yes
NotifyAccess=all
UNIT
}
i=0; while ! ferryctl status >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 300 ] && { line "ferryd never answered"; exit 1; }; sleep 0.1; done
mkdir -p $units
stage=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^ferry_bench_stage=//p' | tail -n 1)
stage=${stage:-0}
sizes=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^ferry_bench_sizes=//p' | tail -n 1 | tr ',' ' ')
sizes=${sizes:-100 1000 5000}
set -- $sizes
total=$#
if [ "$stage" -gt 0 ]; then
  eval previous=\${$stage}
  # The bare loop's other half, then ferryd's record of the update it carried.
  unit barebench bench-retrieve "$previous"
  ferryctl daemon-reload
  ferryctl start barebench.service >/dev/null || line "stage $stage: bare retrieve failed"
  line "record $stage $previous $(ferryctl last-update --json)"
  line "stored $stage $previous $(ferryctl fdstore bulk$((stage - 1)).service --json | tr ',' '\n' | grep -c '"name"')"
  ferryctl clean bulk$((stage - 1)).service >/dev/null || line "stage $stage: clean failed"
fi
if [ "$stage" -ge "$total" ]; then
  line done
  kill -INT 1
  exit 0
fi
eval size=\${$((stage + 1))}
line "stage $stage: storing $size"
unit bulk$stage store-many "$size"
unit barebench bench-preserve "$size"
ferryctl daemon-reload
ferryctl start bulk$stage.service >/dev/null || line "stage $stage: store-many failed"
ferryctl start barebench.service >/dev/null || line "stage $stage: bare preserve failed"
line "stage $stage: kexec with $(ferryctl status --json | tr ',' '\n' | grep storedFDs)"
ferryctl kexec --kernel /kexec/bzImage --initrd /kexec/initrd.cpio \
  --append "$(cat /proc/cmdline | sed 's/ ferry_bench_stage=[0-9]*//g') ferry_bench_stage=$((stage + 1))"
line "stage $stage: ferryctl kexec returned $?"
# No kexec: end this boot (ferryd as PID 1 stops everything; qemu -no-reboot exits).
kill -INT 1
