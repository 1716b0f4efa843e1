#!/usr/bin/env bash
# The loader under libFuzzer (cargo-fuzz, nightly) for a bounded time:
# arbitrary bytes as a case file and an expectation file must load or fail
# with a located error, never panic. Usage: ci/fuzz.sh [SECONDS] (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p harness/fuzz/corpus/load
# Only libFuzzer's summary lines are shown, but cargo's own exit status is
# what counts: a target that does not build, or a crash, fails the script
# (grep's status, 1 when no line matched, does not).
status=0
cargo +nightly fuzz run --fuzz-dir harness/fuzz load \
  harness/fuzz/corpus/load harness/fuzz/seeds/load -- -max_total_time="$secs" 2>&1 |
  grep -E '^(Done|==|SUMMARY|thread|ERROR|error)|panicked' || status=("${PIPESTATUS[@]}")
# libFuzzer leaves a crash-* file for every input that failed.
if compgen -G 'harness/fuzz/artifacts/load/*' >/dev/null; then
  echo "fuzzing found failing inputs:" >&2
  ls harness/fuzz/artifacts/load >&2
  exit 1
fi
if [ "${status[0]}" -ne 0 ]; then
  echo "cargo fuzz failed (exit ${status[0]}): the target did not build, or the fuzzer failed" >&2
  exit 1
fi
