#!/usr/bin/env bash
# Renders the HTML report in a real headless Chromium (Debian's), takes a
# screenshot, and checks the rendered DOM: one header per run, one row per
# test of the union of the runs, a cell per run in every row, and the filter.
#
#   ci/html-check.sh [RESULTS.json...]   (default: two fresh runs on this kernel)
set -euo pipefail
cd "$(dirname "$0")/.."
out=ci/.cache/html
mkdir -p "$out"

if ! command -v chromium >/dev/null; then
  echo "installing chromium..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
cargo build --release -q
bin=./target/release/sockspec

inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  # Two runs with different test sets, so the report must take their union.
  "$bin" run --quiet --label "full" --json "$out/a.json" >/dev/null || true
  "$bin" run --quiet --label "without actors" --skip actors:: --json "$out/b.json" >/dev/null || true
  inputs=("$out/a.json" "$out/b.json")
fi
"$bin" report "${inputs[@]}" --html "$out/report.html"

chrome() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" "$@" 2>/dev/null
}
page="file://$(pwd)/$out/report.html"
chrome --window-size=1600,1200 --screenshot="$out/report.png" "$page" >/dev/null
chrome --dump-dom "$page" > "$out/dom.html"
filter="bind::pairs"
chrome --dump-dom "$page#filter=$filter" > "$out/dom-filtered.html"

python3 - "$out" "$filter" "${inputs[@]}" <<'PY'
import json, sys
from html.parser import HTMLParser

out, flt, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(p)) for p in inputs]
names = set(t["name"] for r in runs for t in r["tests"])

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.runs, self.rows, self.visible, self.cells, self.row_cells = 0, 0, 0, [], None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "th" and "run" in cls:
            self.runs += 1
        if tag == "tr" and "test" in cls:
            self.rows += 1
            self.visible += "hidden" not in a
            if self.row_cells is not None:
                self.cells.append(self.row_cells)
            self.row_cells = 0
        if tag == "td" and self.row_cells is not None:
            self.row_cells += 1
    def close(self):
        super().close()
        if self.row_cells is not None:
            self.cells.append(self.row_cells)

def parse(path):
    d = Dom(); d.feed(open(path).read()); d.close(); return d

d = parse(f"{out}/dom.html")
problems = []
if d.runs != len(runs): problems.append(f"{d.runs} run headers, expected {len(runs)}")
if d.rows != len(names): problems.append(f"{d.rows} test rows, expected {len(names)}")
if d.visible != len(names): problems.append(f"{d.visible} rows visible unfiltered, expected {len(names)}")
bad = [c for c in d.cells if c != len(runs) + 1]
if bad: problems.append(f"{len(bad)} rows without a cell per run")
f = parse(f"{out}/dom-filtered.html")
want = sum(1 for n in names if flt in n)
if f.visible != want: problems.append(f"filter {flt!r}: {f.visible} rows visible, expected {want}")
if problems:
    print("HTML report check FAILED:\n  " + "\n  ".join(problems)); sys.exit(1)
print(f"HTML report check: {d.runs} runs x {d.rows} tests rendered in Chromium; "
      f"filter {flt!r} shows {f.visible}; screenshot {out}/report.png")
PY
