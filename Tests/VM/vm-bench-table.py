#!/usr/bin/env python3
"""The VM benchmark's table, from its serial log: per N, the bare loop's and ferryd's prepare and
restore (medians over the rounds), their ratios, and the goal ferryd <= 1.25 x bare + 20 ms."""
import json
import re
import statistics
import sys

bare_prepare, bare_restore, ferryd_prepare, ferryd_restore, details = {}, {}, {}, {}, {}
# The restore as the issue counts it: retrieve the sessions, read the mapping, retrieve the fds,
# finish (ferryd's restore phase also decodes the old side's report and timings, shown apart).
core_restore = {}
# Each log is one boot chain (stage K of a chain carries its K-th size): parsed one at a time.
for path in sys.argv[1:]:
    text = open(path, "rb").read().decode("utf-8", "replace").replace("\r", "")
    for n, ms in re.findall(r"FERRY-VM bench: bare loop: create session \+ preserve (\d+) memfds: ([\d.]+) ms", text):
        bare_prepare.setdefault(int(n), []).append(float(ms))
    for n, ms in re.findall(r"FERRY-VM bench: bare loop: retrieve (\d+) memfds \+ finish: ([\d.]+) ms", text):
        bare_restore.setdefault(int(n), []).append(float(ms))
    # ferryd logs the mapping's write once per stage (stage K carries the K-th size), and the
    # restore's parts once per boot after the first.
    stages = [int(n) for n in re.findall(r"^FERRY-BENCH stage \d+: storing (\d+)$", text, re.M)]
    written = [float(ms) for ms in re.findall(r"mapping of \d+ bytes written in ([\d.]+) ms", text)]
    sizes = [int(b) for b in re.findall(r"mapping of (\d+) bytes written", text)]
    restores = re.findall(r"restore: (session [\d.]+ ms, mapping .*)$", text, re.M)
    for line in re.findall(r"^FERRY-BENCH record (\d+) (\d+) (.*)$", text, re.M):
        stage, n, record = int(line[0]), int(line[1]), json.loads(line[2])
        phases = {p["name"]: p["durationUs"] / 1000 for p in record.get("phases", [])}
        mapping = written[stage - 1] if stage - 1 < len(written) else 0.0
        ferryd_prepare.setdefault(n, []).append(phases.get("serialize", 0) + phases.get("preserve", 0) + mapping)
        ferryd_restore.setdefault(n, []).append(phases.get("restore", 0))
        read = restores[stage - 1] if stage - 1 < len(restores) else None
        if read:
            parts = [float(v) for v in re.findall(r"(?:session|read|parsed|entries|finish) ([\d.]+) ms", read)]
            core_restore.setdefault(n, []).append(sum(parts))
        details.setdefault(n, []).append(
            f"carried {record.get('carriedCount')}, serialize {phases.get('serialize', 0):.1f} + preserve "
            f"{phases.get('preserve', 0):.1f} + mapping write {mapping:.1f} ms"
            + (f" ({sizes[stage - 1]} bytes)" if stage - 1 < len(sizes) else "")
            + (f"; restore: {read}" if read else ""))

def goal(ferryd, bare):
    return "met" if ferryd <= 1.25 * bare + 20 else "missed"

print("| N | bare prepare ms | ferryd prepare ms | ratio | goal | bare restore ms | ferryd restore ms | ratio | goal | whole restore phase ms | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
failed = False
for n in sorted(set(ferryd_prepare) & set(bare_prepare) & set(bare_restore)):
    bp, fp = statistics.median(bare_prepare[n]), statistics.median(ferryd_prepare[n])
    br, whole = statistics.median(bare_restore[n]), statistics.median(ferryd_restore[n])
    fr = statistics.median(core_restore.get(n, ferryd_restore[n]))
    print(f"| {n} | {bp:.1f} | {fp:.1f} | {fp / bp:.2f} | {goal(fp, bp)} | {br:.1f} | {fr:.1f} | {fr / br:.2f} | {goal(fr, br)} | {whole:.1f} ({whole / br:.2f}x) | {len(ferryd_prepare[n])} |")
    failed |= goal(fp, bp) == "missed" or goal(fr, br) == "missed"
print("goal: ferryd <= 1.25 x bare + 20 ms (prepare: serialize + preserve + mapping write; restore: session + mapping read"
      " and parse + entries + finish; the whole phase adds the decoding of the old side's report and timings)")
for n in sorted(details):
    for detail in details[n]:
        print(f"  N={n}: {detail}")
if not ferryd_prepare:
    print("vm-bench: no complete stage in the log")
    sys.exit(1)
