#!/usr/bin/env bash
# `cargo package` and `cargo publish --dry-run` of the sockspec crate, with
# the built-in catalogue inside the package.
#
# A package holds only files under its own directory (harness/), and the
# catalogue is ../cases. So this clones the repository's committed state into
# a temporary directory, copies the catalogue to harness/catalogue/ and the
# licence files beside it there, commits them in that throwaway clone (its
# parent is this HEAD, so the package's VCS info still leads back here), and
# packages from it: cargo's check for uncommitted files stays on, no
# --allow-dirty. build.rs reads ../cases in the repository and catalogue/ in
# the unpacked package. A real release runs the same with `cargo publish`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
if [[ -n $(git -C "$repo" status --porcelain) ]]; then
  echo "package.sh: commit your changes first (the package is made from HEAD)" >&2
  git -C "$repo" status --short >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-hardlinks "$repo" "$tmp/src"
cd "$tmp/src"
git checkout --quiet --detach "$(git -C "$repo" rev-parse HEAD)"
mkdir harness/catalogue
git archive HEAD:cases | tar -x -C harness/catalogue
cp LICENSE-MIT LICENSE-APACHE harness/
git add --force harness/catalogue harness/LICENSE-MIT harness/LICENSE-APACHE
git -c user.name="sockspec ci/package.sh" -c user.email="package@sockspec.invalid" \
  commit --quiet -m "package: the catalogue and licence files inside the crate"
cargo package --locked -p sockspec
# The packaged crate must carry the whole catalogue.
list=$(cargo package --locked -p sockspec --list)
for f in catalogue/claims.toml catalogue/sources.toml catalogue/README.md \
  catalogue/expected/linux.toml LICENSE-MIT LICENSE-APACHE README.md build.rs; do
  grep -qx "$f" <<<"$list" || { echo "package.sh: $f is not in the package" >&2; exit 1; }
done
[[ $(grep -c '^catalogue/' <<<"$list") -eq $(git ls-files cases | wc -l) ]] ||
  { echo "package.sh: the package's catalogue differs from cases/" >&2; exit 1; }
# cargo package has just built and tested-compiled the package; the dry run
# checks the rest of a publish (metadata, index, upload) without a second build.
cargo publish --locked -p sockspec --dry-run --no-verify
