#!/usr/bin/env bash
# Renders the HTML report in a real headless Chromium (Debian's), takes a
# screenshot at 1400 px wide, and checks the rendered DOM: one header per
# run, one row per test of the union of the runs, a cell per run in every
# row; the page opens on the rows that differ, and marks the differing step
# inside a cell; `#all` shows every row, `#filter=` the rows it matches;
# four runs fit in 1400 px.
#
#   ci/html-check.sh [RESULTS.json...]   (default: two fresh runs on this kernel,
#                                         and two copies of the first, one altered)
set -euo pipefail
cd "$(dirname "$0")/.."
out=ci/.cache/html
mkdir -p "$out"

if ! command -v chromium >/dev/null; then
  echo "installing chromium..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# SOCKSPEC_BIN: a sockspec binary already built (else a release build).
bin=${SOCKSPEC_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q
  bin=./target/release/sockspec
fi

inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  # Two runs with different test sets, so the report must take their union.
  "$bin" run --quiet --label "full" --json "$out/a.json" >/dev/null || true
  "$bin" run --quiet --label "without actors" --skip actors:: --json "$out/b.json" >/dev/null || true
  # Four runs in all, as a matrix of four OSes would be; the fourth has one
  # outcome altered (a copy, for this check only), so some row must differ.
  python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
a = json.load(open(f"{out}/a.json"))
a["run"]["label"] = "copy of full"
json.dump(a, open(f"{out}/c.json", "w"))
a["run"]["label"] = "altered copy (html-check)"
for t in a["tests"]:
    steps = [s for s in t["steps"] if s.get("label")]
    if t["verdict"] == "pass" and steps:
        steps[0]["outcome"] = "EPERM" if steps[0]["outcome"] != "EPERM" else "ok"
        t["verdict"] = "fail"
        a["summary"]["pass"] -= 1
        a["summary"]["fail"] += 1
        open(f"{out}/altered.txt", "w").write(t["name"] + "\n" + steps[0]["label"])
        break
json.dump(a, open(f"{out}/d.json", "w"))
PY
  inputs=("$out/a.json" "$out/b.json" "$out/c.json" "$out/d.json")
fi
"$bin" report "${inputs[@]}" --html "$out/report.html"

chrome() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" "$@" 2>/dev/null
}
page="file://$(pwd)/$out/report.html"
chrome --window-size=1400,1000 --screenshot="$out/report.png" "$page" >/dev/null
chrome --window-size=1400,1000 --dump-dom "$page" > "$out/dom.html"
chrome --window-size=1400,1000 --dump-dom "$page#all" > "$out/dom-all.html"
filter="bind::pairs"
chrome --window-size=1400,1000 --dump-dom "$page#filter=$filter" > "$out/dom-filtered.html"

python3 - "$out" "$filter" "${inputs[@]}" <<'PY'
import json, os, sys
from html.parser import HTMLParser

out, flt, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(p)) for p in inputs]
names = set(t["name"] for r in runs for t in r["tests"])

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.runs, self.rows, self.visible, self.differs, self.cells, self.row_cells = 0, 0, 0, 0, [], None
        self.width, self.marks, self.in_mark, self.row_name, self.marked_rows = None, [], False, None, set()
        self.name_text, self.in_name = "", False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "body" and a.get("data-table-width"):
            self.width = int(a["data-table-width"])
        if tag == "th" and "run" in cls:
            self.runs += 1
        if tag == "tr" and "test" in cls:
            self.rows += 1
            self.visible += "hidden" not in a
            self.differs += "differs" in cls
            if self.row_cells is not None:
                self.cells.append(self.row_cells)
            self.row_cells = 0
            self.row_name = None
        if tag == "td" and self.row_cells is not None:
            self.row_cells += 1
            self.in_name = "name" in cls
            if self.in_name:
                self.name_text = ""
        if tag == "mark" and self.row_cells is not None:
            self.in_mark = True
    def handle_endtag(self, tag):
        if tag == "td" and self.in_name:
            self.row_name, self.in_name = self.name_text, False
        if tag == "mark":
            self.in_mark = False
    def handle_data(self, data):
        if self.in_name:
            self.name_text += data
        if self.in_mark:
            self.marks.append(data)
            self.marked_rows.add(self.row_name)
    def close(self):
        super().close()
        if self.row_cells is not None:
            self.cells.append(self.row_cells)

def parse(path):
    d = Dom(); d.feed(open(path).read()); d.close(); return d

problems = []
d = parse(f"{out}/dom-all.html")
if d.runs != len(runs): problems.append(f"{d.runs} run headers, expected {len(runs)}")
if d.rows != len(names): problems.append(f"{d.rows} test rows, expected {len(names)}")
if d.visible != len(names): problems.append(f"#all: {d.visible} rows visible, expected {len(names)}")
bad = [c for c in d.cells if c != len(runs) + 1]
if bad: problems.append(f"{len(bad)} rows without a cell per run")
if len(runs) <= 4 and (d.width is None or d.width > 1400):
    problems.append(f"{len(runs)} runs: the table is {d.width} px wide, more than 1400")

first = parse(f"{out}/dom.html")
want_open = first.differs if first.differs else len(names)
if first.visible != want_open:
    problems.append(f"the page opens on {first.visible} rows, expected the {want_open} that differ")
altered = f"{out}/altered.txt"
if os.path.exists(altered):
    name, label = open(altered).read().split("\n")
    if first.differs == 0: problems.append("no row differs, though one outcome was altered")
    if name not in first.marked_rows:
        problems.append(f"the altered step of {name} is not marked")
    if not any(m.startswith(label + "=") for m in first.marks):
        problems.append(f"no <mark> holds {label}=...")

f = parse(f"{out}/dom-filtered.html")
want = sum(1 for n in names if flt in n)
if f.visible != want: problems.append(f"filter {flt!r}: {f.visible} rows visible, expected {want}")
if problems:
    print("HTML report check FAILED:\n  " + "\n  ".join(problems)); sys.exit(1)
print(f"HTML report check: {d.runs} runs x {d.rows} tests rendered in Chromium, {d.width} px wide; "
      f"opens on the {first.visible} rows that differ ({len(first.marks)} marked step(s)); "
      f"#all shows {d.visible}; filter {flt!r} shows {f.visible}; "
      f"screenshot {out}/report.png (1400 px wide)")
PY
