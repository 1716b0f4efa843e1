#!/usr/bin/env bash
# Runs the whole suite as a Windows program under Wine, headless, judged
# against cases/expected/wine.toml (observed under Wine, blessed from Wine
# runs). Wine is an emulation: its results are labelled `wine`, never Windows.
#
#   ci/wine.sh              build, run, print the summary (exit 1 on failures)
#   ci/wine.sh --json FILE  also keep the results file
#   ci/wine.sh --bless      run, then bless the Wine results into wine.toml
#
# Installs mingw-w64 and Wine 8 (Debian) when missing. The prefix lives in
# ci/.cache/wineprefix so later runs start warm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
json=""
bless=false
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json="$2"; shift 2 ;;
    --bless) bless=true; shift ;;
    *) echo "usage: ci/wine.sh [--json FILE] [--bless]" >&2; exit 2 ;;
  esac
done

if ! command -v wine >/dev/null || ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "installing mingw-w64 and wine..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mingw-w64 wine64 wine >/dev/null
fi
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
cargo build --release -q --target x86_64-pc-windows-gnu
exe="$root/target/x86_64-pc-windows-gnu/release/sockspec.exe"

export WINEPREFIX="$root/ci/.cache/wineprefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEARCH=win64
unset DISPLAY
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
[ -x "$wine" ] || wine=wine

start=$(date +%s.%N)
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "creating the Wine prefix (once)..."
  mkdir -p "$WINEPREFIX"
  "$wine" wineboot --init >/dev/null 2>&1 || true
  wineserver -w
fi
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$dll" ] || [ "$root/ci/wine/processprng.c" -nt "$dll" ]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$dll" "$root/ci/wine/processprng.c"
fi

out=${json:-$(mktemp --suffix=.json)}
set +e
extra=()
$bless && extra=(--repeat 3)
"$wine" "$exe" run --only-cases --cases cases "${extra[@]}" --label "wine $("$wine" --version 2>/dev/null | head -1)" --json "$out"
status=$?
set -e
wineserver -w || true
printf 'wine: %.1f s (prefix %s)\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$([ -f "$WINEPREFIX/.warm" ] && echo warm || echo cold)"
touch "$WINEPREFIX/.warm"

if $bless; then
  cargo run --release -q -- bless --from "$out"
fi
[ -n "$json" ] || rm -f "$out"
exit $status
