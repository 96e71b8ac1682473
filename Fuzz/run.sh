#!/usr/bin/env bash
# Builds Ferry's fuzzers (libFuzzer + AddressSanitizer) and runs one, or all, for a bounded number
# of inputs, starting from Corpus/<fuzzer> (new inputs go to a scratch corpus, not into git).
#
# usage: Fuzz/run.sh NAME [RUNS] [LIBFUZZER OPTIONS...]
#        Fuzz/run.sh all [RUNS]           every fuzzer, one after the other (default 100000 runs each)
#        Fuzz/run.sh list                 the fuzzers' names
#        Fuzz/run.sh seeds                writes Corpus/ again from the test inputs (fuzz-seeds)
#   NAME     a fuzzer without its "fuzz-" prefix (notify, unitfile, mapping, upstream, reexec, varlink,
#            json, emulator-wire, emulator-kernel)
#   RUNS     inputs to run (libFuzzer's -runs); 0 means no limit (stop it with ^C)
# Environment: FUZZ_SECONDS caps each run's time (-max_total_time), FUZZ_JOBS=N builds with -jN
# (default 2), FUZZ_WORK a folder for the working corpora and crash files (default .build/fuzz-work).
# A crash leaves crash-* in FUZZ_WORK/NAME and makes the script fail; reproduce it with
#   Fuzz/.build/release/fuzz-NAME FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
fuzzers=(notify unitfile mapping upstream reexec varlink json emulator-wire emulator-kernel)
name=${1:-}
runs=${2:-100000}
shift $(( $# > 2 ? 2 : $# ))
[ -n "$name" ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
if [ "$name" = list ]; then printf '%s\n' "${fuzzers[@]}"; exit 0; fi

# -sanitize=fuzzer instruments every Swift module of the build (Ferry's included) for coverage;
# -enable-testing lets fuzz-emulator-kernel drive the emulated kernel's internal entry points.
flags=(-c release -j "${FUZZ_JOBS:-2}" -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
build() {  # fuzzers...
  mkdir -p .build
  for fuzzer in "$@"; do
    echo "fuzz: building fuzz-$fuzzer" >&2
    if ! swift build "${flags[@]}" --product "fuzz-$fuzzer" > .build/fuzz-build.log 2>&1; then
      grep -E 'error:' .build/fuzz-build.log | head -n 20 >&2
      tail -n 5 .build/fuzz-build.log >&2
      echo "fuzz: fuzz-$fuzzer did not build (log: Fuzz/.build/fuzz-build.log)" >&2
      exit 1
    fi
  done
}

run() {  # name runs [options...]
  local fuzzer=$1 count=$2
  shift 2
  local work=${FUZZ_WORK:-$here/.build/fuzz-work}/$fuzzer
  mkdir -p "$work/corpus"
  [ "$count" = 0 ] && count=-1  # libFuzzer: -1 runs without a limit
  local options=(-runs="$count" -artifact_prefix="$work/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
  [ -n "${FUZZ_SECONDS:-}" ] && options+=(-max_total_time="$FUZZ_SECONDS")
  # The Swift runtime's backtracer would intercept the crash before libFuzzer saves the input.
  echo "fuzz: fuzz-$fuzzer ${options[*]} $*" >&2
  local start=$SECONDS status=0
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
    ".build/release/fuzz-$fuzzer" "${options[@]}" "$@" "$work/corpus" "Corpus/$fuzzer" > "$work/log" 2>&1 || status=$?
  local stats
  stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$work/log" | tr '\n' ' ' || true)
  local coverage
  coverage=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1 | grep -o 'cov: [0-9]* ft: [0-9]*' || true)
  echo "fuzz-$fuzzer: status $status, $((SECONDS - start)) s, $coverage, $stats"
  if [ "$status" != 0 ]; then
    grep -E 'ERROR|Fatal error|property violated|SUMMARY|Test unit written|^0x' "$work/log" | head -n 20
    return 1
  fi
}

if [ "$name" = seeds ]; then
  swift build "${flags[@]}" --product fuzz-seeds > .build/fuzz-build.log 2>&1 || { tail -n 20 .build/fuzz-build.log; exit 1; }
  rm -rf Corpus
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build/release/fuzz-seeds Corpus
elif [ "$name" = all ]; then
  build "${fuzzers[@]}"
  failed=0
  for fuzzer in "${fuzzers[@]}"; do run "$fuzzer" "$runs" "$@" || failed=$((failed + 1)); done
  echo "fuzz: ${#fuzzers[@]} fuzzers, $failed failed"
  [ "$failed" = 0 ]
else
  name=${name#fuzz-}
  [[ " ${fuzzers[*]} " == *" $name "* ]] || { echo "fuzz: unknown fuzzer '$name' (Fuzz/run.sh list)" >&2; exit 2; }
  build "$name"
  run "$name" "$runs" "$@"
fi
