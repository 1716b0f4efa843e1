#!/usr/bin/env bash
# Type-checks and lints every OS's code path from this machine: `cargo check`
# and `cargo clippy -D warnings` for each target. No linker or SDK is needed
# for either. Installs the targets with rustup itself.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(
  x86_64-pc-windows-msvc
  x86_64-pc-windows-gnu
  aarch64-apple-darwin
  aarch64-apple-ios
  x86_64-unknown-freebsd
  x86_64-unknown-netbsd
  x86_64-unknown-illumos
  x86_64-linux-android
)

installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  rustup target add "${missing[@]}"
fi

failed=()
for t in "${targets[@]}"; do
  start=$(date +%s.%N)
  if cargo check -q --target "$t" --all-targets && cargo clippy -q --target "$t" --all-targets -- -D warnings; then
    printf '%-28s ok   %5.1f s\n' "$t" "$(echo "$(date +%s.%N) - $start" | bc)"
  else
    printf '%-28s FAILED\n' "$t"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "cross-check failed for: ${failed[*]}" >&2
  exit 1
fi
