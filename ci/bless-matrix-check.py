#!/usr/bin/env python3
"""Checks what ci/bless-matrix.sh made of a directory of results artifacts.

    ci/bless-matrix-check.py DIR OUT

DIR is the artifacts directory (DIR/results-*/*.json), OUT what
ci/bless-matrix.sh wrote there (summary.md, bless.patch). Every results file
must have its row, under its OS, naming its artifact and file, with bless
`ok`; the line counts the summary gives must be the patch's; the patch may
touch only the expectation files of the OSes that ran; and the Wine run's
header must record its stack settings as a map. Exits 1 with every problem
found.
"""
import json
import os
import re
import sys

dir_, out = sys.argv[1], sys.argv[2]
summary = open(os.path.join(out, "summary.md")).read()
patch = open(os.path.join(out, "bless.patch")).read()
problems = []

# The summary's sections: "## <os>" up to the next one.
sections = {}
for m in re.finditer(r"^## (\S+)\n(.*?)(?=^## |\Z)", summary, re.M | re.S):
    sections[m.group(1)] = m.group(2)

runs = []
for artifact in sorted(os.listdir(dir_)):
    if not artifact.startswith("results-"):
        continue
    for f in sorted(os.listdir(os.path.join(dir_, artifact))):
        if f.endswith(".json"):
            runs.append((artifact, f, json.load(open(os.path.join(dir_, artifact, f)))))
if not runs:
    problems.append(f"no results files under {dir_}/results-*/")

oses = set()
for artifact, f, r in runs:
    os_name = r["run"]["os"]
    oses.add(os_name)
    section = sections.get(os_name)
    if section is None:
        problems.append(f"{artifact}/{f}: no `## {os_name}` section in summary.md")
        continue
    rows = [l for l in section.splitlines() if l.startswith(f"| {artifact}/{f} (")]
    if len(rows) != 1:
        problems.append(f"{artifact}/{f}: {len(rows)} rows in `## {os_name}`, want 1")
        continue
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    if len(cells) != 6:
        problems.append(f"{artifact}/{f}: a row of {len(cells)} cells: {rows[0]}")
        continue
    if not all(c.isdigit() for c in cells[2:5]):
        problems.append(f"{artifact}/{f}: counts are not numbers: {cells[2:5]}")
    if not cells[5].startswith("ok"):
        problems.append(f"{artifact}/{f}: bless did not succeed: {cells[5]}")
    if r["run"]["kernel"] not in cells[1]:
        problems.append(f"{artifact}/{f}: the row names release `{cells[1]}`, the run `{r['run']['kernel']}`")
    checked = sum(1 for t in r["tests"] for s in t["steps"]
                  if s.get("label") and s["outcome"] != "not_run")
    if checked == 0:
        problems.append(f"{artifact}/{f}: no checked step ran: nothing to bless from")

for os_name in sections:
    if os_name not in oses:
        problems.append(f"summary.md has a `## {os_name}` section no run made")

# The header's line counts are the patch's.
m = re.search(r"`bless.patch`: (\d+) line\(s\) added, (\d+) removed", summary)
added = sum(1 for l in patch.splitlines() if l.startswith("+") and not l.startswith("+++"))
removed = sum(1 for l in patch.splitlines() if l.startswith("-") and not l.startswith("---"))
if not m:
    problems.append("summary.md gives no patch line counts")
elif (int(m.group(1)), int(m.group(2))) != (added, removed):
    problems.append(f"summary.md counts +{m.group(1)} -{m.group(2)}, the patch has +{added} -{removed}")

# Only the expectation files of the OSes that ran.
touched = set(re.findall(r"^diff --git a/(\S+) ", patch, re.M))
allowed = {f"cases/expected/{o}.toml" for o in oses}
if touched - allowed:
    problems.append(f"the patch touches {sorted(touched - allowed)}; runs were on {sorted(oses)}")

# The Wine run records its settings: a map (empty when Wine reports none).
for artifact, f, r in runs:
    if r["run"]["os"] == "wine" and not isinstance(r["run"].get("settings"), dict):
        problems.append(f"{artifact}/{f}: the Wine run's header has no settings map")

for p in problems:
    print(f"bless-matrix-check: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"bless-matrix-check: {len(runs)} run(s) on {', '.join(sorted(oses))}; "
      f"patch +{added} -{removed} in {len(touched)} file(s)")
