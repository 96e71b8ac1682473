#!/usr/bin/env bash
# A short, bounded run of every fuzzer in Fuzz/ (libFuzzer + AddressSanitizer), for CI: each runs
# from its seed corpus for at most FUZZ_SMOKE_RUNS inputs or FUZZ_SMOKE_SECONDS seconds, whichever
# comes first, with a fixed seed. Exits non-zero on a crash, a sanitizer report, a violated
# property, or a fuzzer that does not build. Tests/run-all.sh runs it with 15 s per fuzzer and no
# input limit (--no-fuzz or FERRY_SKIP_FUZZ=1 to skip it there).
#
# usage: Tests/fuzz-smoke.sh
# FUZZ_SMOKE_RUNS (default 200000; 0 for no limit), FUZZ_SMOKE_SECONDS (default 30).
# Needs clang's libFuzzer runtime, which the Swift toolchain ships
# (usr/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a next to swift); exits 77 without it.
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
if ! compgen -G "$toolchain/lib/clang/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a" > /dev/null; then
  echo "fuzz-smoke: skipped: the Swift toolchain at $toolchain has no libFuzzer runtime (libclang_rt.fuzzer-$(uname -m).a); install the swift.org toolchain" >&2
  exit 77
fi
start=$(date +%s)
export FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-30}
export FUZZ_WORK=${FUZZ_WORK:-$(mktemp -d /tmp/ferry-fuzz-smoke.XXXXXX)}
status=0
./run.sh all "${FUZZ_SMOKE_RUNS:-200000}" -seed=1 || status=$?
echo "fuzz-smoke: $(( $(date +%s) - start )) s in all (work folder $FUZZ_WORK)"
exit $status
