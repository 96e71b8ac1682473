#!/usr/bin/env bash
# Every test Ferry has: the Swift test suites (emulator, library, process-level), then the VM test
# against a real LUO kernel. Exits non-zero if any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
swift test 2>&1 | tee /tmp/ferry-swift-test.log | grep -v -E '^(◇|↳)' || true
grep -q -E '✘|error:' /tmp/ferry-swift-test.log && { echo "swift test failed"; exit 1; }
grep -q 'Test run with .* passed' /tmp/ferry-swift-test.log || { echo "swift test did not finish"; exit 1; }
Tests/VM/run-vm-test.sh
