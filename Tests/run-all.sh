#!/usr/bin/env bash
# Every test Ferry has: installs what the tests need (Tests/setup.sh), runs the Swift test suites
# (emulator, library, process-level), a bounded fuzz smoke (every fuzzer for 15 s, about 2.5 min
# plus its build), the Ansible playbook test, then the VM tests against a real LUO kernel (ferryd
# as PID 1, then a real systemd 252 and 262 as PID 1). Tests whose packages are missing are
# skipped with a line saying what to install, and counted in the summary.
# Exits non-zero if any test fails.
#
# usage: Tests/run-all.sh [--no-vm] [--no-fuzz]
#   --no-vm, or FERRY_SKIP_VM=1: no VM tests; --no-fuzz, or FERRY_SKIP_FUZZ=1: no fuzz smoke
#   FERRY_FUZZ_SECONDS: seconds per fuzzer in the smoke (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."

run_vm=1
run_fuzz=1
for argument in "$@"; do
  case "$argument" in
    --no-vm) run_vm=0 ;;
    --no-fuzz) run_fuzz=0 ;;
    *) echo "run-all: unknown argument '$argument' (usage: Tests/run-all.sh [--no-vm] [--no-fuzz])" >&2; exit 2 ;;
  esac
done
[ -n "${FERRY_SKIP_VM:-}" ] && run_vm=0
[ -n "${FERRY_SKIP_FUZZ:-}" ] && run_fuzz=0

if ! command -v swift >/dev/null 2>&1; then
  echo "run-all: swift is not on PATH; Ferry needs Swift 6.3 (https://www.swift.org/install/linux/)" >&2
  exit 1
fi

if [ "$run_vm" = 1 ]; then Tests/setup.sh; else Tests/setup.sh --no-vm; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "run-all: not root: the process-level tests start and stop units, which ferryd allows only to root," \
       "and drop privileges with setpriv; expect them to fail (run: sudo Tests/run-all.sh)"
fi

log=$(mktemp /tmp/ferry-swift-test.XXXXXX.log)
swift test 2>&1 | tee "$log" | grep -v -E '^(◇|↳)' || true
swift_result=passed
if grep -q -E '✘|error:' "$log"; then
  swift_result=failed
elif ! grep -q 'Test run with .* passed' "$log"; then
  swift_result="did not finish"
fi
skipped=$(grep -c -E '^. Test .* skipped' "$log" || true)
summary="swift test $swift_result"
[ "$skipped" -gt 0 ] && summary+=" ($skipped skipped)"
echo "run-all: $(grep -a -E 'Test run with' "$log" | tail -n 1 | sed 's/^[^T]*//')"
if [ "$skipped" -gt 0 ]; then
  echo "run-all: $skipped skipped for missing packages (a skipped suite counts once):"
  grep -E '^. Test .* skipped' "$log" | sed -E 's/^.*skipped: //' | sort | uniq -c | sed 's/^/  /'
fi

# Every fuzzer from its seed corpus for a few seconds, seed 1: a crash, a sanitizer report or a
# fuzzer that does not build fails the run.
fuzz_result="not run (--no-fuzz)"
if [ "$run_fuzz" = 1 ]; then
  fuzz_result=passed
  fuzz_status=0
  FUZZ_SMOKE_SECONDS=${FERRY_FUZZ_SECONDS:-15} FUZZ_SMOKE_RUNS=0 Tests/fuzz-smoke.sh || fuzz_status=$?
  if [ "$fuzz_status" = 77 ]; then fuzz_result="skipped: the Swift toolchain has no libFuzzer"
  elif [ "$fuzz_status" != 0 ]; then fuzz_result=failed; fi
fi

# The rolling-update playbook against two rehearsing ferryds on this machine.
ansible_result=passed
Tests/Ansible/run-playbook-test.sh || ansible_result=failed

vm_result="not run (--no-vm)"
if [ "$run_vm" = 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    # It fetches Debian's kernel source with apt-get and caches the kernel in /var/cache/ferry-vm.
    vm_result="skipped: needs root (sudo Tests/run-all.sh, or Tests/VM/run-vm-test.sh as root)"
    echo "run-all: VM test $vm_result"
  elif missing=$(Tests/setup.sh --check vm); then
    vm_result=passed
    Tests/VM/run-vm-test.sh || vm_result=failed
    # A real systemd as PID 1 (Debian 12's 252 and sid's 262), ferryd as its service.
    Tests/VM/systemd/run-systemd-vm-test.sh || vm_result=failed
    # The same sid disk booted with ferryd as PID 1: a real kexec, the client's session, a clean disk.
    FERRY_SD_INIT=ferryd Tests/VM/systemd/run-systemd-vm-test.sh sid || vm_result=failed
  else
    vm_result="skipped: needs $missing (apt-get install $missing, or run Tests/setup.sh as root)"
    echo "run-all: VM test $vm_result"
  fi
fi

echo "run-all: summary: $summary; fuzz smoke $fuzz_result; Ansible $ansible_result; VM tests $vm_result"
[ "$swift_result" = passed ] && [ "$fuzz_result" != failed ] && [ "$ansible_result" = passed ] && [ "$vm_result" != failed ]
