#!/usr/bin/env bash
# Wall time of the whole suite and the median test, release build, default
# jobs. The `timing` topic (cases that measure how long a call blocks, e.g.
# linger) is reported apart: it waits on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=./target/release/sockspec
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" run --quiet --json "$out/all.json" >/dev/null || true
"$bin" run --quiet --skip timing:: --json "$out/fast.json" >/dev/null || true

python3 - "$out/all.json" "$out/fast.json" <<'PY'
import json, statistics, sys
for path, what in ((sys.argv[1], "full suite"), (sys.argv[2], "without the timing topic")):
    r = json.load(open(path))
    t = r["tests"]
    ran = [x["duration_ms"] for x in t if x["verdict"] != "skip"]
    s = r["summary"]
    print(f"{what}: {len(t)} tests ({s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['skip']} skip) "
          f"in {r['run']['duration_ms'] / 1000:.3f} s wall, {r['run']['jobs']} jobs, isolation {r['run']['isolation']}; "
          f"per test median {statistics.median(ran) if ran else 0:.2f} ms, max {max(ran) if ran else 0:.1f} ms")
# Starting a helper process (an actor) is one `spawn` step: re-exec in agent
# mode, then the first reply over its pipe.
spawns = [s["duration_ms"] for x in json.load(open(sys.argv[1]))["tests"] for s in x["steps"]
          if s["kind"] == "spawn" and s["outcome"] == "ok"]
if spawns:
    print(f"actor start: {len(spawns)} spawns, median {statistics.median(spawns):.2f} ms, max {max(spawns):.2f} ms")
PY

# Reports: 10 runs x 1000+ tests (copies of the run above, with outcomes
# perturbed so that rows differ), merged into Markdown, HTML and JUnit.
python3 - "$out/all.json" "$out" <<'PY'
import json, random, sys
base = json.load(open(sys.argv[1]))
random.seed(1)
for i in range(10):
    r = json.loads(json.dumps(base))
    r["run"]["label"] = f"synthetic run {i}"
    for t in r["tests"]:
        for s in t["steps"]:
            if s.get("label") and random.random() < 0.02:
                s["outcome"] = "ECONNRESET"
    json.dump(r, open(f"{sys.argv[2]}/run{i}.json", "w"))
PY
start=$(date +%s.%N)
"$bin" report "$out"/run{0..9}.json --html "$out/report.html" --markdown "$out/summary.md" --junit "$out/junit" >/dev/null
end=$(date +%s.%N)
tests=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['tests']))" "$out/all.json")
printf 'report: 10 runs x %s tests -> Markdown, HTML (%s bytes), JUnit in %.3f s\n' "$tests" "$(stat -c %s "$out/report.html")" "$(echo "$end - $start" | bc)"
