#!/usr/bin/env python3
"""Compare the conformance table's results from the real kernel (VM serial log) with the
emulator's for the same profile. Every case must pass on the kernel, and the kernel's observation
must equal the emulator's, except where the emulator documents a deviation.

usage: compare-results.py SERIAL_LOG EMULATOR_LOG
Prints one line per case and closes with 'vm-test: N passed, N failed'. Exit status 1 on any failure.
"""
import re
import sys

LINE = re.compile(r'^case (\S+) (PASS|FAIL|SKIP) observed="(.*?)" expected="(.*?)"(?: note="(.*)")?$')


def parse(path):
    results = {}
    with open(path, errors="replace") as handle:
        for raw in handle:
            match = LINE.match(raw.strip().replace("\r", ""))
            if match:
                case, verdict, observed, expected, note = match.groups()
                results[case] = (verdict, observed, expected, note)
    return results


def main():
    kernel = parse(sys.argv[1])
    emulator = parse(sys.argv[2])
    passed = failed = 0
    for case in emulator:
        e_verdict, e_observed, _, e_note = emulator[case]
        if case not in kernel:
            print(f"vm-case {case} FAIL: no result from the kernel (emulator: {e_observed})")
            failed += 1
            continue
        k_verdict, k_observed, k_expected, _ = kernel[case]
        if k_verdict != "PASS":
            print(f"vm-case {case} FAIL: kernel observed \"{k_observed}\", spec expects \"{k_expected}\"")
            failed += 1
        elif k_observed == e_observed:
            print(f"vm-case {case} PASS: kernel and emulator both \"{k_observed}\"")
            passed += 1
        elif e_note and e_note.startswith("emulator deviation"):
            print(f"vm-case {case} PASS: kernel \"{k_observed}\"; emulator \"{e_observed}\" ({e_note})")
            passed += 1
        else:
            print(f"vm-case {case} FAIL: kernel \"{k_observed}\" but emulator \"{e_observed}\"")
            failed += 1
    for case in kernel:
        if case not in emulator:
            print(f"vm-case {case} FAIL: the kernel ran a case the emulator did not")
            failed += 1
    print(f"vm-conformance: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
