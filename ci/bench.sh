#!/usr/bin/env bash
# Speed figures, each beside its goal (issue 15), release build, default
# jobs: start-up (`check`, one test), the whole suite and its CPU per test,
# the guests' boot + suite (from ci/kernels.sh's last results, if any), and
# reports. Medians of several runs; on a loaded machine the wall times say
# more about the load than about sockspec, so the CPU figures come too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=./target/release/sockspec
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Wall (median) and user+system CPU (median) of a command, N times.
timed() {
  local n=$1; shift
  python3 - "$n" "$@" <<'PY'
import resource, statistics, subprocess, sys, time
# getrusage, not os.times: times() counts in clock ticks (10 ms here), too
# coarse for a command of a few tens of ms.
cpu = lambda r: r.ru_utime + r.ru_stime
n, cmd = int(sys.argv[1]), sys.argv[2:]
walls, cpus = [], []
for _ in range(n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls.append(time.perf_counter() - t)
    cpus.append(cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu(before))
print(f"{statistics.median(walls) * 1000:.1f} {statistics.median(cpus) * 1000:.1f}")
PY
}
goal() { # figure-name measured-ms goal-ms [extra]
  local verdict=met
  if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$2" "$3"; then :; else verdict="NOT met"; fi
  printf '%-44s %9.2f ms   goal <= %6s ms   %s%s\n' "$1" "$2" "$3" "$verdict" "${4:+  ($4)}"
}

read -r w c < <(timed 11 "$bin" check)
goal "sockspec check (wall)" "$w" 20 "CPU $c ms"
one=$("$bin" list | grep -m1 '^bind::pairs')
read -r w c < <(timed 11 "$bin" run --quiet --exact "$one")
goal "sockspec run --exact ONE_TEST (wall)" "$w" 30 "CPU $c ms"
# How many tests a run with these arguments runs (does not skip).
ran() {
  "$bin" run --quiet "$@" --json "$out/cpu.json" >/dev/null || true
  python3 -c "import json,sys; print(sum(1 for t in json.load(open(sys.argv[1]))['tests'] if t['verdict'] != 'skip'))" "$out/cpu.json"
}
read -r w c < <(timed 3 "$bin" run --quiet)
ran=$(ran)
goal "full suite (wall)" "$w" 1200 "$ran tests ran"
goal "CPU per test that ran (user+sys, with helpers)" "$(python3 -c "print($c / $ran)")" 0.4
# The same without the runtimes topic, whose few tests start a Python and a
# Node interpreter (and Python's shim, if python3 is one): what sockspec
# itself and the kernel spend per test.
read -r _ c < <(timed 3 "$bin" run --quiet --skip runtimes::)
ran=$(ran --skip runtimes::)
goal "CPU per test that ran, runtimes:: aside" "$(python3 -c "print($c / $ran)")" 0.4 "$ran tests ran"
read -r w c < <(timed 3 "$bin" run --quiet --skip timing::)
goal "full suite without the timing topic (wall)" "$w" 600
# Per test process, debug profile: what nextest pays for each test, which
# runs in a process of its own (`BINARY --exact NAME`), timed directly for
# the 13 connect:: tests (cargo's and nextest's own start-up aside).
exe=$(cargo test -p sockspec --test conformance --no-run --message-format=json 2>/dev/null |
  python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('reason') == 'compiler-artifact' and m.get('executable') and m['target']['name'] == 'conformance'][-1])")
mapfile -t names < <("$exe" --list 2>/dev/null | sed -n 's/^\(connect::.*\): test$/\1/p')
walls=()
for n in "${names[@]}"; do
  read -r w _ < <(timed 3 "$exe" --exact "$n")
  walls+=("$w")
done
med=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}')
goal "one test process, debug (wall, median)" "$med" 50 "${#names[@]} connect:: tests, BINARY --exact NAME"
if command -v cargo-nextest >/dev/null; then
  cargo nextest run -p sockspec --test conformance --no-run >/dev/null 2>&1
  read -r w _ < <(timed 1 cargo nextest run -p sockspec --test conformance --test-threads 2)
  echo "whole conformance target under nextest, 2 threads (wall, with cargo and nextest): $(python3 -c "print(f'{$w / 1000:.1f}')") s"
fi
# Guests: boot + suite per kernel from the last ci/kernels.sh run.
if compgen -G "ci/.cache/kernels/console-*.log.secs" >/dev/null; then
  for f in ci/.cache/kernels/console-*.log.secs; do
    k=$(basename "$f" .log.secs); k=${k#console-}
    goal "guest $k: boot + suite (wall)" "$(python3 -c "print(float(open('$f').read()) * 1000)")" 8000
  done
else
  echo "guests: not measured here (run ci/kernels.sh first)"
fi

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

# The whole suite in another runtime's helper (`--agent`), where this
# machine has it: each worker keeps its helper from test to test.
for rt in python:python3 node:node; do
  if command -v "${rt#*:}" >/dev/null; then
    read -r w c < <(timed 1 "$bin" run --quiet --agent "${rt%%:*}")
    printf '%-44s %9.1f s    (CPU %.1f s, no goal)\n' "run --agent ${rt%%:*} (wall)" "$(python3 -c "print($w / 1000)")" "$(python3 -c "print($c / 1000)")"
  fi
done

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
