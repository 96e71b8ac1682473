#!/usr/bin/env bash
# A short, bounded run of every fuzzer in Fuzz/ (libFuzzer + AddressSanitizer), for CI: each runs
# from its seed corpus for at most FUZZ_SMOKE_RUNS inputs or FUZZ_SMOKE_SECONDS seconds, whichever
# comes first, with a fixed seed. Exits non-zero on a crash, a sanitizer report, a violated
# property, or a fuzzer that does not build. Not part of Tests/run-all.sh (yet).
#
# usage: Tests/fuzz-smoke.sh
# FUZZ_SMOKE_RUNS (default 200000), FUZZ_SMOKE_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
start=$(date +%s)
export FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-30}
export FUZZ_WORK=${FUZZ_WORK:-$(mktemp -d /tmp/ferry-fuzz-smoke.XXXXXX)}
status=0
./run.sh all "${FUZZ_SMOKE_RUNS:-200000}" -seed=1 || status=$?
echo "fuzz-smoke: $(( $(date +%s) - start )) s in all (work folder $FUZZ_WORK)"
exit $status
