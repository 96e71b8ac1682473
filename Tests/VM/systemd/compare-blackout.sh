#!/bin/bash
# The blackout of a live update under systemd with and without ferryd in between, side by side.
#
#   Tests/VM/systemd/compare-blackout.sh [RUNS] [SUITE]     (defaults: 5 runs of each, sid)
#
# Runs Tests/VM/systemd/run-systemd-vm-test.sh SUITE 2×RUNS times, alternating a VM with Ferry's
# units installed and the same VM without them (FERRY_SD_PLAIN=1: systemd alone), so that the
# host's load, which TCG's speed follows, falls on both alike. Same kernel, command line, qemu
# flags, N (FERRY_SD_FDS, default 10) and client. Per run, from the guest's printk clock:
#   A          `systemctl kexec` requested -> the kexec syscall
#   B          next kernel start -> the service has verified its fds
#   B user     the userspace part of B: the kernel runs /sbin/init -> verified
# "with ferryd" reports the client that runs under ferryd (ferryd between it and systemd) and, for
# reference, the same client directly under systemd in that VM; "systemd alone" the client directly
# under systemd in the VM without Ferry. Prints each run, then medians and ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-5} suite=${2:-sid}
out=$(mktemp -d /tmp/ferry-blackout.XXXXXX)
echo "compare-blackout: $runs run(s) each, suite $suite, logs in $out"
for run in $(seq 1 "$runs"); do
  for mode in ferry plain; do
    plain=0; [ $mode = plain ] && plain=1
    log=$out/$mode-$run.log
    if FERRY_SD_PLAIN=$plain "$here/run-systemd-vm-test.sh" "$suite" > "$log" 2>&1; then
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
rows = {"ferry": [], "plain": []}
for path in sorted(glob.glob(f"{out}/*.log")):
    mode = "plain" if "/plain-" in path else "ferry"
    text = open(path, errors="replace").read()
    init = grab(text, r"at (\d+\.\d+) s: the kernel runs /sbin/init")
    row = {
        "A": grab(text, r"measure A \([^)]*\) (\d+\.\d+) s"),
        "B": grab(text, r"measure B \(next kernel start -> baseline[^)]*\) (\d+\.\d+) s"),
        "B ferryd": grab(text, r"measure B through ferryd \([^)]*\) (\d+\.\d+) s"),
        "init": init,
    }
    for key in ("B", "B ferryd"):
        row[f"{key} user"] = row[key] - init if row[key] is not None and init is not None else None
    rows[mode].append(row)
    print(f"  {path.rsplit('/', 1)[1]:<14} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if v is not None))
def median(mode, key):
    values = [r[key] for r in rows[mode] if r.get(key) is not None]
    return (statistics.median(values), len(values)) if values else (None, 0)
print(f"\nmedians ({suite}, printk clock, seconds; n = runs with the figure)")
print(f"| measure | systemd alone | with ferryd: client under ferryd | ratio | difference | with ferryd: client under systemd |")
print(f"|---|---|---|---|---|---|")
for label, plain_key, ferry_key in (("A: request -> kexec syscall", "A", "A"),
                                     ("B: kernel start -> fds verified", "B", "B ferryd"),
                                     ("B, userspace part: /sbin/init -> fds verified", "B user", "B ferryd user")):
    alone, n_alone = median("plain", plain_key)
    ferried, n_ferried = median("ferry", ferry_key)
    beside, n_beside = median("ferry", plain_key)
    if alone is None or ferried is None:
        print(f"| {label} | {alone} (n={n_alone}) | {ferried} (n={n_ferried}) | - | - | - |")
        continue
    beside_text = f"{beside:.3f} (n={n_beside})" if beside is not None and ferry_key != plain_key else "-"
    print(f"| {label} | {alone:.3f} (n={n_alone}) | {ferried:.3f} (n={n_ferried}) | {ferried / alone:.3f} | "
          f"{(ferried - alone) * 1000:+.0f} ms | {beside_text} |")
PY
