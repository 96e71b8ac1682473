#!/bin/bash
# The blackout of a live update with and without Ferry, side by side, in the systemd VM test's VM.
#
#   Tests/VM/systemd/compare-blackout.sh [RUNS] [SUITE]     (defaults: 5 runs of each mode, sid)
#   FERRY_COMPARE_MODES="ferry plain pid1"                  (default: "ferry plain")
#
# Runs Tests/VM/systemd/run-systemd-vm-test.sh SUITE RUNS times per mode, the modes taking turns so
# that the host's load, which TCG's speed follows, falls on all alike. Same kernel, command line,
# qemu flags, disk, N (FERRY_SD_FDS, default 10; each client also owns a LUO session unless
# FERRY_SD_SESSION=0) and client. The modes:
#   plain   systemd as PID 1 alone; the client directly under systemd (FERRY_SD_PLAIN=1)
#   ferry   systemd as PID 1 with ferryd as its service; the client under ferryd (issue 15), and
#           no baseline client beside it (FERRY_SD_BASELINE=0): one client per boot in every mode,
#           so that on one vCPU no mode pays for another client's work
#   pid1    ferryd as PID 1 (init=/usr/local/bin/ferryd); the client under ferryd (FERRY_SD_INIT=ferryd)
# Per run, from the guest's printk clock:
#   A          the kexec requested (`systemctl kexec`, or `ferryctl kexec` under ferryd as PID 1)
#              -> the kexec syscall
#   B          next kernel start -> the client has verified its fds
#   B user     the userspace part of B: the kernel runs init -> verified
#   B after journald   journald started -> verified: the part of B where the modes differ (the
#              boot before it is the same in each, and varies by seconds under TCG)
# Prints each run, then medians and each mode's ratio to systemd alone.
# The VM has one virtual CPU (FERRY_VM_SMP, default 1 here) and boots with acpi=noirq (added to
# FERRY_SD_APPEND): with two vCPUs on this two-core host, and ACPI's PCI interrupt routing under TCG
# (seconds-long gaps in the kernel's part, varying from run to run), the same mode varied 3x
# between runs, drowning differences of 10 %.
set -euo pipefail
export FERRY_VM_SMP=${FERRY_VM_SMP:-1}
export FERRY_SD_APPEND="acpi=noirq ${FERRY_SD_APPEND:-}"
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-5} suite=${2:-sid}
out=$(mktemp -d /tmp/ferry-blackout.XXXXXX)
echo "compare-blackout: $runs run(s) each, suite $suite, logs in $out"
modes=${FERRY_COMPARE_MODES:-ferry plain}
for run in $(seq 1 "$runs"); do
  for mode in $modes; do
    plain=0 init=systemd baseline=1
    case $mode in
      plain) plain=1 ;;
      pid1) init=ferryd ;;
      ferry) baseline=0 ;;
      *) echo "compare-blackout: unknown mode $mode (ferry, plain, pid1)"; exit 2 ;;
    esac
    log=$out/$mode-$run.log
    if FERRY_SD_PLAIN=$plain FERRY_SD_BASELINE=$baseline FERRY_SD_INIT=$init "$here/run-systemd-vm-test.sh" "$suite" > "$log" 2>&1; then
      echo "compare-blackout: run $run $mode: $(tail -n 1 "$log")"
    else
      echo "compare-blackout: run $run $mode FAILED: $(tail -n 1 "$log") (left out of the figures)"
      mv "$log" "$log.failed"
    fi
  done
done
python3 - "$out" "$suite" <<'PY'
import glob, re, statistics, sys
out, suite = sys.argv[1], sys.argv[2]
def grab(text, pattern):
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None
rows = {}
for path in sorted(glob.glob(f"{out}/*.log")):
    mode = path.rsplit("/", 1)[1].split("-")[0]
    text = open(path, errors="replace").read()
    init = grab(text, r"at (\d+\.\d+) s: the kernel runs init")
    # The client that matters: directly under systemd alone, else the one under ferryd.
    key = r"measure B \(next kernel start -> baseline" if mode == "plain" else r"measure B through ferryd \("
    b = grab(text, key + r"[^)]*\) (\d+\.\d+) s")
    # journald's start: the boot up to it is the same in every mode (ferryd starts after it), and
    # under TCG it varies by seconds from boot to boot; what follows it is where the modes differ.
    journald = grab(text, r"at (\d+\.\d+) s: journald started")
    row = {"A": grab(text, r"measure A \([^)]*\) (\d+\.\d+) s"), "B": b, "init": init,
           "B user": b - init if b is not None and init is not None else None,
           "B after journald": b - journald if b is not None and journald is not None else None}
    rows.setdefault(mode, []).append(row)
    print(f"  {path.rsplit('/', 1)[1]:<14} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if v is not None))
def median(mode, key):
    values = [r[key] for r in rows.get(mode, []) if r.get(key) is not None]
    return (statistics.median(values), len(values)) if values else (None, 0)
labels = {"plain": "systemd alone", "ferry": "systemd + ferryd (client under ferryd)", "pid1": "ferryd as PID 1"}
print(f"\nmedians ({suite}, printk clock, seconds; n = runs with the figure; ratio and difference against systemd alone)")
print("| mode | A: request -> kexec | B: kernel start -> fds verified | B, userspace: init -> verified | B after journald's start |")
print("|---|---|---|---|---|")
for mode in rows:
    cells = []
    for key in ("A", "B", "B user", "B after journald"):
        value, n = median(mode, key)
        alone, _ = median("plain", key)
        if value is None:
            cells.append("-")
        elif mode == "plain" or alone is None:
            cells.append(f"{value:.3f} (n={n})")
        else:
            cells.append(f"{value:.3f} (n={n}), {value / alone:.2f}x, {(value - alone) * 1000:+.0f} ms")
    print(f"| {labels.get(mode, mode)} | " + " | ".join(cells) + " |")
PY
