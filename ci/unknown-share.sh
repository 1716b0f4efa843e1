#!/usr/bin/env bash
# Share of checked steps each OS cannot judge: over every expanded test that
# can run on the OS, the checked steps whose resolved expectation (no kernel
# range) is `unknown` or missing.  Usage: ci/unknown-share.sh [CASES_DIR] [--by-case OS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sockspec --example unknown_share -- "${@:-cases}"
