#!/usr/bin/env bash
# From a matrix run to observed expectations in one step.
#
#   ci/bless-matrix.sh DIR [OUT]
#
# DIR holds downloaded results artifacts laid out as actions/download-artifact
# lays them out: DIR/results-<job>/*.json. Each results file is blessed into
# its OS's expectation file in a scratch copy of cases/ (never this tree),
# and OUT (default: DIR/bless-out) receives
#   bless.patch  the changes to cases/expected/*.toml (`git apply bless.patch`)
#   summary.md   per OS and run: how many checked steps became observed,
#                which observations contradict a documented expectation (with
#                the citation), how many steps remain unknown.
# Runs are kept apart: every observation is listed with the run (artifact,
# label, root or not) it came from, and a test whose outcomes differ between
# two runs of one OS, release and settings (root and non-root, say) is not
# blessed from either; the summary lists it.
#
# Bless refuses to write on CI; here it writes only the scratch copy, so $CI
# is unset for it. Review the patch before applying it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: ci/bless-matrix.sh DIR [OUT]}
dir=$(cd "$dir" && pwd)
out=${2:-$dir/bless-out}
mkdir -p "$out"
out=$(cd "$out" && pwd)

shopt -s nullglob
files=("$dir"/results-*/*.json)
if [ ${#files[@]} -eq 0 ]; then
  echo "ci/bless-matrix.sh: no results files under $dir/results-*/" >&2
  exit 2
fi

bin=${SOCKSPEC:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release -q --bin sockspec)
  bin="$root/target/release/sockspec"
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$root/cases" "$scratch/cases"
(
  cd "$scratch"
  git init -q
  git add -A
  git -c user.name=bless-matrix -c user.email=bless-matrix@localhost commit -q -m base
)

# Plan: which file is which run, what each says, which tests conflict.
python3 - "$scratch" "${files[@]}" <<'PY'
import json, os, sys
from collections import defaultdict

scratch, files = sys.argv[1], sys.argv[2:]
runs = []
for f in files:
    try:
        r = json.load(open(f))
    except Exception as e:
        print(f"skipping {f}: {e}", file=sys.stderr)
        continue
    if r.get("schema") != "sockspec/results/v2":
        print(f"skipping {f}: schema {r.get('schema')!r}", file=sys.stderr)
        continue
    run = r["run"]
    artifact = os.path.basename(os.path.dirname(f))
    who = "root" if run.get("privileged") else "non-root"
    title = run.get("label") or f"{run['os']} {run['kernel']}"
    runs.append({
        "file": f, "artifact": artifact, "os": run["os"], "kernel": run["kernel"],
        "who": who, "title": title, "profile": run.get("profile"),
        "settings": run.get("settings", {}), "tests": r["tests"],
        "name": f"{artifact}/{os.path.basename(f)} ({title}, {who})",
    })

def blessable(t):
    return t["verdict"] in ("pass", "fail") and not t.get("problem")

def sig(t):
    return tuple(sorted((s["label"], s["outcome"]) for s in t["steps"]
                        if s.get("label") and s["outcome"] != "not_run"))

# Tests whose outcomes differ between runs of one OS, release and settings.
groups = defaultdict(list)
for i, r in enumerate(runs):
    groups[(r["os"], r["kernel"], json.dumps(r["settings"], sort_keys=True))].append(i)
conflicts = defaultdict(dict)   # run index -> test -> text
for key, idxs in groups.items():
    seen = defaultdict(dict)    # test -> sig -> [run names]
    for i in idxs:
        for t in runs[i]["tests"]:
            if blessable(t):
                seen[t["name"]].setdefault(sig(t), []).append(i)
    for name, sigs in seen.items():
        if len(sigs) > 1:
            text = "; ".join(
                " ".join(f"{l}={o}" for l, o in s) + " in " + ", ".join(runs[i]["name"] for i in ii)
                for s, ii in sigs.items())
            for ii in sigs.values():
                for i in ii:
                    conflicts[i][name] = text

plan = []
for i, r in enumerate(runs):
    keep = [t for t in r["tests"] if t["name"] not in conflicts[i]]
    doc = json.load(open(r["file"]))
    doc["tests"] = keep
    filtered = os.path.join(scratch, f"run-{i}.json")
    json.dump(doc, open(filtered, "w"))
    plan.append({**{k: v for k, v in r.items() if k != "tests"},
                 "filtered": filtered, "conflicts": conflicts[i]})
json.dump(plan, open(os.path.join(scratch, "plan.json"), "w"))
PY

# Bless, non-root runs first: every run on its own, into the scratch copy.
python3 - "$scratch/plan.json" <<'PY' > "$scratch/order"
import json, sys
plan = json.load(open(sys.argv[1]))
for i in sorted(range(len(plan)), key=lambda i: (plan[i]["os"], plan[i]["who"] == "root", plan[i]["name"])):
    print(i)
PY
while read -r i; do
  f="$scratch/run-$i.json"
  log="$scratch/bless-$i.log"
  if env -u CI "$bin" bless --only-cases --cases "$scratch/cases" --from "$f" >"$log" 2>&1; then
    echo ok >"$scratch/status-$i"
  else
    echo "failed (exit $?)" >"$scratch/status-$i"
  fi
done <"$scratch/order"

(cd "$scratch" && git add -A cases && git diff --cached -- cases) >"$out/bless.patch"

python3 - "$scratch" "$out/summary.md" "$out/bless.patch" <<'PY'
import json, os, sys
from collections import defaultdict

scratch, summary, patch = sys.argv[1:4]
plan = json.load(open(os.path.join(scratch, "plan.json")))
by_os = defaultdict(list)
for i, r in enumerate(plan):
    by_os[r["os"]].append(i)

lines = ["# From the matrix run to observed expectations", ""]
added = sum(1 for l in open(patch) if l.startswith("+") and not l.startswith("+++"))
removed = sum(1 for l in open(patch) if l.startswith("-") and not l.startswith("---"))
lines.append(f"`bless.patch`: {added} line(s) added, {removed} removed in cases/expected/. "
             "Apply with `git apply bless.patch`, after reading it.")
for os_name in sorted(by_os):
    lines += ["", f"## {os_name}", ""]
    lines.append("| run | blessed from | steps that became observed | contradict a documented expectation | remain unknown | bless |")
    lines.append("|---|---|---|---|---|---|")
    findings, unknowns, conflicts = [], [], []
    for i in by_os[os_name]:
        r = plan[i]
        tests = json.load(open(r["filtered"]))["tests"]
        newly = contra = unknown = 0
        for t in tests:
            ok = t["verdict"] in ("pass", "fail") and not t.get("problem")
            for s in t["steps"]:
                if not s.get("label") or s["outcome"] == "not_run":
                    continue
                exp, ref = s.get("expected"), s.get("expectation") or {}
                if not ok:
                    if exp in (None, "unknown"):
                        unknown += 1
                        unknowns.append(f"{t['name']} `{s['label']}` ({r['name']}: {t['verdict']}"
                                        + (f", {t['problem']['kind']}" if t.get("problem") else "") + ")")
                    continue
                if ref.get("source") == "observed" and exp == s["outcome"]:
                    continue
                newly += 1
                if ref.get("source") == "documented" and exp not in (None, "unknown", s["outcome"]):
                    contra += 1
                    findings.append(
                        f"- **{t['name']}** `{s['label']}`: observed `{s['outcome']}`, documented `{exp}` "
                        f"({ref.get('provenance', '')}; {os.path.basename(ref.get('file', ''))}:{ref.get('line', '')}) "
                        f"— from {r['name']}")
        for name, text in sorted(r["conflicts"].items()):
            conflicts.append(f"- {name}: {text}")
        setting = f"profile {r['profile']}" if r.get("profile") else ""
        status = open(os.path.join(scratch, f"status-{i}")).read().strip()
        log = open(os.path.join(scratch, f"bless-{i}.log")).read().strip().splitlines()
        last = next((l for l in reversed(log) if "outcome(s) confirmed" in l), log[-1] if log else "")
        last = last.replace(scratch + "/", "")
        lines.append(f"| {r['name']} {setting} | {r['kernel']}, {r['who']} | {newly} | {contra} | {unknown} | {status}: {last} |")
    lines += ["", "### Observations that contradict a documented expectation (findings worth reading)", ""]
    lines += sorted(set(findings)) or ["none"]
    if conflicts:
        lines += ["", "### Not blessed: outcomes differ between runs of this OS, release and settings", ""]
        lines += sorted(set(conflicts))
    lines += ["", f"### Steps that remain unknown ({len(unknowns)}; tests that did not give a kernel verdict)", ""]
    shown = sorted(set(unknowns))
    lines += [f"- {u}" for u in shown[:50]] or ["none"]
    if len(shown) > 50:
        lines.append(f"- ... and {len(shown) - 50} more")
open(summary, "w").write("\n".join(lines) + "\n")
PY

echo "patch:   $out/bless.patch"
echo "summary: $out/summary.md"
