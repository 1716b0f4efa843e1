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
PY
