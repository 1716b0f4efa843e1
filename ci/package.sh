#!/usr/bin/env bash
# `cargo package` and `cargo publish --dry-run` of the sockspec crate, with
# the built-in catalogue inside the package. A package holds only files
# under its own directory (harness/), and the catalogue is ../cases: this
# copies it (and the licence files) into harness/, where they are
# git-ignored, and removes the copies afterwards. build.rs prefers ../cases
# whenever it is there, so a copy left behind can never shadow it.
set -euo pipefail
cd "$(dirname "$0")/.."
staged=(harness/catalogue harness/LICENSE-MIT harness/LICENSE-APACHE)
trap 'rm -rf "${staged[@]}"' EXIT
rm -rf "${staged[@]}"
# Only the files git knows (no editor leftovers, no results files).
git ls-files -z cases | while IFS= read -r -d '' f; do
  mkdir -p "harness/catalogue/$(dirname "${f#cases/}")"
  cp "$f" "harness/catalogue/${f#cases/}"
done
cp LICENSE-MIT LICENSE-APACHE harness/
cargo package --locked -p sockspec
# The packaged crate must carry the whole catalogue.
list=$(cargo package --locked -p sockspec --list)
for f in catalogue/claims.toml catalogue/sources.toml catalogue/expected/linux.toml LICENSE-MIT LICENSE-APACHE README.md build.rs; do
  grep -qx "$f" <<<"$list" || { echo "package.sh: $f is not in the package" >&2; exit 1; }
done
cargo publish --locked -p sockspec --dry-run
