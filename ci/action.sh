#!/usr/bin/env bash
# The shell half of the composite Action (action.yml at the repository's
# root): install sockspec from the Action's own checkout, run it, write the
# step summary and annotations, and say where the results file is. Inputs
# come in as INPUT_* environment variables (never spliced into the script,
# so an input cannot inject shell). .ci/run runs it on a downstream tree
# (ci/adopt.sh) with GITHUB_* pointed at temporary files.
set -euo pipefail

action_path=${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}
root=${INPUT_INSTALL_ROOT:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/sockspec}
bin=$root/bin/sockspec
results=${INPUT_RESULTS:-sockspec-results.json}
label=${INPUT_LABEL:-${GITHUB_JOB:-sockspec}}

# Install (or reuse an up-to-date install of) this very checkout's sockspec.
if [[ "${INPUT_INSTALL:-true}" == true ]]; then
  cargo install --locked --quiet --path "$action_path/harness" --root "$root"
fi
[[ -x "$bin" ]] || { echo "::error::sockspec is not installed at $bin"; exit 3; }
"$bin" --version

args=(run --quiet --label "$label" --json "$results")
while IFS= read -r dir; do
  [[ -n "$dir" ]] && args+=(--cases "$dir")
done <<<"${INPUT_CASES:-}"
[[ "${INPUT_ONLY_CASES:-false}" == true ]] && args+=(--only-cases)
while IFS= read -r pattern; do
  [[ -n "$pattern" ]] && args+=(--skip "$pattern")
done <<<"${INPUT_SKIP:-}"
if [[ -n "${INPUT_PROFILE:-}" ]]; then args+=(--profile "$INPUT_PROFILE"); fi
# Filters last: they are positional.
read -r -a filters <<<"${INPUT_FILTER:-}"
args+=("${filters[@]}")

run=("$bin")
if [[ "${INPUT_ROOT:-false}" == true && $(id -u) -ne 0 ]]; then
  # Root gives every worker a network namespace of its own (Linux) and runs
  # the cases that need another user. -E keeps CI and the INPUT_* settings.
  run=(sudo -E "$bin")
fi

status=0
"${run[@]}" "${args[@]}" || status=$?
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  echo "results=$results" >>"$GITHUB_OUTPUT"
  echo "status=$status" >>"$GITHUB_OUTPUT"
fi
if [[ -f "$results" ]]; then
  if [[ "${INPUT_SUMMARY:-true}" == true && -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    # Appended: other steps write to the same summary.
    "$bin" report "$results" --markdown - >>"$GITHUB_STEP_SUMMARY"
  fi
  if [[ "${INPUT_ANNOTATIONS:-true}" == true ]]; then
    "$bin" report "$results" --annotations
  fi
fi
exit "$status"
