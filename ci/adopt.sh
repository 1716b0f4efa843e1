#!/usr/bin/env bash
# Issue 14's "done when", on this machine: adopting sockspec takes one line.
#  1. `cargo install --path harness` from a copy of the repository, the copy
#     then moved away: the installed binary runs its built-in catalogue (and
#     a project's own tree) from an unrelated directory.
#  2. A scratch crate outside the repository runs its own case plus built-in
#     ones through `sockspec::testing` (tests/sockspec.rs, harness = false).
#  3. The composite Action's script (ci/action.sh) runs that crate's tree.
# The scratch crate is ci/downstream. Builds share this repository's target
# directory, so what `cargo build --release` already built is reused.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A cache of its own: the catalogue is unpacked afresh, from the binary.
export XDG_CACHE_HOME=$tmp/cache
unset SOCKSPEC_CASES
fail() { echo "adopt: $*" >&2; exit 1; }

echo "--- 1. install from a copy of the repository, then move the copy away"
mkdir "$tmp/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
  (cd "$repo" && xargs -0 cp --parents -t "$tmp/src" 2>/dev/null || true)
cargo install --locked --quiet --path "$tmp/src/harness" --root "$tmp/root"
mv "$tmp/src" "$tmp/gone"
bin=$tmp/root/bin/sockspec
mkdir "$tmp/elsewhere" && cd "$tmp/elsewhere"
"$bin" --version | grep -Eq '^sockspec [0-9.]+ \(catalogue [0-9a-f]{12}, [0-9]+ cases\)$' ||
  fail "--version does not name the catalogue: $("$bin" --version)"
"$bin" check
"$bin" run --quiet bind::rebind_bound
"$bin" list | grep -q '^bind::pairs::' || fail "the built-in catalogue is not listed"
# The built-in catalogue is compiled in: bless refuses to write there.
status=0
CI= "$bin" bless --repeat 1 bind::rebind_bound 2>"$tmp/bless.err" || status=$?
[[ $status -eq 3 ]] && grep -q "built-in catalogue" "$tmp/bless.err" ||
  fail "bless into the built-in catalogue: exit $status, $(cat "$tmp/bless.err")"

echo "--- 2. a scratch crate: its own case beside built-in ones, through the API"
crate=$tmp/scratch
cp -r "$repo/ci/downstream" "$crate"
cat >"$crate/Cargo.toml" <<TOML
[package]
name = "scratch"
version = "0.0.0"
edition = "2024"
publish = false

[dev-dependencies]
sockspec = { path = "$repo/harness" }

[[test]]
name = "sockspec"
harness = false

[workspace]
TOML
# The repository's lock file: the same dependency versions, nothing new to build.
cp "$repo/Cargo.lock" "$crate/Cargo.lock"
cd "$crate"
cargo test --quiet --test sockspec -- --list 2>/dev/null >"$tmp/list"
grep -q '^sockspec/ours::second_bind::reuse=false: test' "$tmp/list" || fail "our case is not a trial: $(cat "$tmp/list")"
grep -q '^bind::rebind_bound::' "$tmp/list" || fail "the built-in cases are not trials"
cargo test --quiet --test sockspec 2>&1 | tee "$tmp/test.out"
grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$tmp/test.out" || fail "the trials did not pass"
# The installed binary finds the crate's sockspec.toml from a subdirectory.
mkdir -p src/deep && (cd src/deep && "$bin" list) >"$tmp/list2"
grep -q '^sockspec/ours::second_bind::' "$tmp/list2" || fail "sockspec.toml's tree is not used"
grep -q '^bind::pairs' "$tmp/list2" && fail "sockspec.toml's filter is not used"
# Bless writes into the tree the test came from.
cp tests/sockspec/expected/linux.toml "$tmp/linux.before"
CI= "$bin" bless --repeat 1 sockspec/ours::second_bind::reuse=true
grep -q 'source = "observed"' tests/sockspec/expected/linux.toml || fail "bless did not write into the crate's tree"
cp "$tmp/linux.before" tests/sockspec/expected/linux.toml
# An observed outcome of a step the case no longer has (it changed since
# the run): the trials leave it out and say so, and `check` refuses it.
cat >>tests/sockspec/expected/linux.toml <<'TOML'

[[expect]]
case = "ours::second_bind"
outcomes = { gone = "ok" }
source = "observed"
seen_on = ["1.0"]
why = "blessed from a run on linux 1.0, before the case lost its step `gone`"
TOML
cargo test --quiet --test sockspec 2>&1 | tee "$tmp/stale.out"
grep -Eq 'test result: ok\. [1-9][0-9]* passed' "$tmp/stale.out" ||
  fail "the trials did not pass beside a stale observed outcome"
grep -q 'tests/sockspec/expected/linux.toml: 1 observed outcome(s) of steps the cases no longer check are left out' "$tmp/stale.out" ||
  fail "the trials did not say they left the crate's stale observed outcome out"
status=0
"$bin" check 2>"$tmp/check.err" || status=$?
[[ $status -eq 2 ]] && grep -q 'expected/linux.toml:[0-9]*:[0-9]*: .*no checked step `gone`' "$tmp/check.err" ||
  fail "check on a stale observed outcome: exit $status, $(cat "$tmp/check.err")"
cp "$tmp/linux.before" tests/sockspec/expected/linux.toml

echo "--- 3. the Action's script on the crate's tree"
summary=$tmp/summary.md out=$tmp/output
GITHUB_STEP_SUMMARY=$summary GITHUB_OUTPUT=$out GITHUB_ACTION_PATH=$repo \
  INPUT_INSTALL_ROOT=$tmp/action-root INPUT_CASES=tests/sockspec \
  INPUT_FILTER="sockspec/ bind::rebind_bound" INPUT_LABEL=adopt-check \
  INPUT_RESULTS=$tmp/results.json CI=true "$repo/ci/action.sh"
grep -q '^results=' "$out" && grep -q '^status=0$' "$out" || fail "no outputs: $(cat "$out")"
grep -q 'adopt-check' "$summary" || fail "no step summary: $(cat "$summary")"
grep -q '"sockspec/ours::second_bind::reuse=false"' "$tmp/results.json" || fail "the results lack our tests"
echo "adopt: all three ways in work"
