#!/usr/bin/env bash
# Runs the whole suite on six real Linux kernels: this machine's own (run
# natively), and Debian's cloud kernels of bullseye, bookworm, trixie, sid
# and experimental (fetched by ci/fetch-kernels.sh, unpacked, never
# installed), each booted under QEMU with an initramfs in which sockspec
# itself is PID 1. Each run is judged against cases/expected/linux.toml; the
# guests print their results on the serial console. Results land in
# ci/.cache/kernels/results-<release>.json (or $KERNELS_CACHE's); their
# report (the history of outcomes across the kernels first, which it
# prints) in report.md/.html.
#
#   ci/kernels.sh            run everywhere, print a summary per kernel and
#                            every failing step; exit 1 if any run has a
#                            failure, an error, or no results
#   ci/kernels.sh --bless    also bless each kernel's results into linux.toml
#   KERNELS="vmlinuz ..."    boot these kernel images instead
#   SUITES="trixie sid"      fetch only these Debian suites
#   HOST=0                   leave out the native run
#   BOOTS=N                  guests booted at once (default: 1)
#   CPUS=N                   vCPUs per guest (default: 2)
#   CASES=DIR                give the guests this case tree (default: cases)
#   KERNELS_CACHE=DIR        keep the guests' init, initramfs, logs and
#                            results here (default: ci/.cache/kernels)
#   (relative paths are from the repository's root)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s.%N)
cache=${KERNELS_CACHE:-ci/.cache/kernels}
mkdir -p "$cache"
bless=false
[ "${1:-}" = "--bless" ] && bless=true
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }

if ! command -v qemu-system-x86_64 >/dev/null; then
  # Installing the emulator uses the machine's apt as it is (no kernel is
  # ever installed: kernels come from ci/fetch-kernels.sh's private setup).
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi

if [ -z "${KERNELS:-}" ]; then
  KERNELS=$(ci/fetch-kernels.sh | cut -f4 | tr '\n' ' ')
fi
[ -n "$KERNELS" ] || { echo "kernels.sh: no kernels" >&2; exit 3; }

# sockspec, static, as /init; the cases beside it.
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
# The guest's allocator (mimalloc) is C: musl-gcc where installed, else the
# system's cc (mimalloc needs only what musl's headers also declare).
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-$(command -v musl-gcc || echo cc)}
cargo build --release -q --features guest --target x86_64-unknown-linux-musl
bin=target/x86_64-unknown-linux-musl/release/sockspec
if [ ! -e "$cache/init" ] || [ "$bin" -nt "$cache/init" ]; then strip -o "$cache/init" "$bin"; fi
# One initramfs per kernel: sockspec, the cases, and that kernel's veth
# module. Beside each bzImage its uncompressed ELF, booted through the PVH
# entry (no firmware real mode, no decompression under emulation).
for k in $KERNELS; do
  ko=$(dirname "$k")/veth.ko
  python3 ci/initramfs.py "$cache/initrd-$(basename "$k").cpio" "$cache/init" "${CASES:-cases}" cases $([ -e "$ko" ] && echo "$ko")
  elf=$(dirname "$k")/vmlinux
  if [ ! -e "$elf" ] || [ "$k" -nt "$elf" ]; then
    python3 ci/vmlinux.py "$k" "$elf.part" && mv "$elf.part" "$elf" || rm -f "$elf.part"
  fi
done

# qboot, QEMU's minimal firmware, where it is installed: SeaBIOS took a few
# tenths of a second of every boot under TCG.
firmware=
[ -e /usr/share/qemu/qboot.rom ] && firmware="-bios qboot.rom"
# boot ACCEL KERNEL LOG SECONDS: one guest, always under a timeout, ended by
# the guest's reboot (-no-reboot). Two vCPUs (ACPI stays: without its MADT
# the kernel sees one), no network card, disk or VGA. On the kernel command
# line no CPU vulnerability mitigations, LSMs, audit, allocation zeroing or
# KASLR, and no PCI or keyboard probing: none changes a socket's behaviour,
# and together they cut the guest's CPU time by a fifth under TCG.
boot() {
  local elf
  elf=$(dirname "$2")/vmlinux
  [ -e "$elf" ] || elf=$2
  rm -f "$3.debugcon"
  timeout -k 5 "$4" qemu-system-x86_64 -accel "$1" $firmware -display none -nodefaults -no-user-config \
    -serial stdio -debugcon "file:$3.debugcon" -no-reboot -m 256 -smp "${CPUS:-2}" \
    -kernel "$elf" -initrd "$cache/initrd-$(basename "$2").cpio" \
    -append "console=ttyS0 quiet panic=-1 mitigations=off lsm=capability audit=0 init_on_alloc=0 rcupdate.rcu_expedited=1 tsc=reliable nokaslr pci=off i8042.noaux i8042.nokbd i8042.nopnp SOCKSPEC_GUEST=1${SOCKSPEC_JOBS:+ SOCKSPEC_JOBS=$SOCKSPEC_JOBS}" \
    </dev/null >"$3" 2>&1 || true
}
# The guest writes its results to QEMU's debug console (port 0xe9, a file
# beside the log) where it can, else on the serial console.
finished() { cat "$1" "$1.debugcon" 2>/dev/null | grep -aq "SOCKSPEC RESULTS END"; }

# KVM only when a probe boot works: the nested /dev/kvm here hangs Debian's
# kernels before they print anything. Probing costs up to 25 s, so the
# verdict is kept per machine (CPU model and host kernel release).
accel=tcg
if [ -w /dev/kvm ]; then
  key=$( (grep -m1 '^model name' /proc/cpuinfo; uname -r) | sha256sum | cut -c1-16)
  verdict=ci/.cache/kvm-$key
  if [ ! -s "$verdict" ]; then
    first=${KERNELS%% *}
    boot kvm "$first" "$cache/kvm-probe.log" 25
    if finished "$cache/kvm-probe.log"; then echo kvm >"$verdict"; else echo tcg >"$verdict"; fi
  fi
  accel=$(cat "$verdict")
fi

# The native run on this machine's kernel, then the guests, BOOTS at a time.
status=0
results=()
if [ "${HOST:-1}" != 0 ]; then
  start=$(date +%s.%N)
  host_json="$cache/results-$(uname -r | sed 's/[^A-Za-z0-9.+-]/_/g').json"
  timeout -k 5 300 "$bin" run --json "$host_json" --label "linux $(uname -r) (host)" >"$cache/host.log" 2>&1 || true
  echo "$(elapsed "$start")" >"$cache/host.secs"
fi

# A guest whose kernel died of `Oops: int3` without results boots once more.
# That is TCG's cross-modifying-code race: a static key flipped (text_poke_bp
# writes an int3 first, then the new instruction) while the other vCPU ran
# the code, and that vCPU still met the int3 after the patch was done. Seen
# about once in 40 boots, at boot (sched_clock_cpu) and at a first socket
# lookup (udp_ehashfn). A real kernel bug ends in ud2 (BUG, WARN) or a fault,
# never int3, so nothing else is retried. The first console is kept
# (.crashed), and the summary line says the guest was retried.
guest() { # KERNEL: boot it, note the seconds
  local k=$1 log start
  log="$cache/console-$(basename "$k").log"
  rm -f "$log.crashed"
  start=$(date +%s.%N)
  boot "$accel" "$k" "$log" 150
  if [ "$accel" = tcg ] && ! finished "$log" && grep -aq 'Oops: int3' "$log"; then
    mv "$log" "$log.crashed"
    start=$(date +%s.%N)
    boot "$accel" "$k" "$log" 150
  fi
  elapsed "$start" >"$log.secs"
}
export -f boot guest elapsed finished
export cache accel firmware SOCKSPEC_JOBS CPUS
printf '%s\n' $KERNELS | xargs -P "${BOOTS:-1}" -I{} bash -c 'guest "$1"' _ {}

# Results out of each console log; a summary line per kernel; every failing step.
logs=()
for k in $KERNELS; do logs+=("$cache/console-$(basename "$k").log"); done
set +e
python3 - "$cache" "${HOST:-1}" "$(uname -r)" "${logs[@]}" <<'PY'
import base64, gzip, json, os, re, sys
cache, host, host_rel, logs = sys.argv[1], sys.argv[2] != "0", sys.argv[3], sys.argv[4:]
safe = lambda s: re.sub(r"[^A-Za-z0-9.+-]", "_", s)
runs, bad = [], False
for log in logs:
    secs = float(open(log + ".secs").read()) if os.path.exists(log + ".secs") else float("nan")
    text = open(log, "rb").read().decode("latin1")
    if os.path.exists(log + ".debugcon"):
        text += open(log + ".debugcon", "rb").read().decode("latin1")
    m = re.search(r"=====SOCKSPEC RESULTS BEGIN.*?=====\r?\n(.*?)=====SOCKSPEC RESULTS END=====", text, re.S)
    if not m:
        again = " (its second boot: the first died of Oops: int3)" if os.path.exists(log + ".crashed") else ""
        print(f"{os.path.basename(log)}: no results on the console after {secs:.1f} s{again} (see {log})")
        bad = True
        continue
    results = json.loads(gzip.decompress(base64.b64decode("".join(m.group(1).split()))))
    path = f"{cache}/results-{safe(results['run']['kernel'])}.json"
    json.dump(results, open(path, "w"), indent=1)
    # Phases, from the guest's uptime: firmware and kernel until init, loading
    # the cases, the suite, the results out; the rest is QEMU before the kernel.
    up = {k: float(v) for k, v in re.findall(r"sockspec guest: .*?\b(init|loaded|done) ([0-9.]+) s after boot", text)}
    how = "qemu"
    if len(up) == 3:
        suite = results["run"]["duration_ms"] / 1000
        how = (f"qemu: kernel {up['init'] + secs - up['done']:.1f}, load {up['loaded'] - up['init']:.1f}, "
               f"suite {suite:.1f}, results {up['done'] - up['loaded'] - suite:.1f}")
    if os.path.exists(log + ".crashed"):
        oops = re.search(r"RIP: \S+:(\S+)", open(log + ".crashed", "rb").read().decode("latin1"))
        how += f"; booted twice: the first boot died of Oops: int3 at {oops.group(1) if oops else '?'} (TCG)"
    runs.append((path, results, secs, how))
if host:
    path = f"{cache}/results-{safe(host_rel)}.json"
    try:
        results = json.load(open(path))
        runs.insert(0, (path, results, float(open(f"{cache}/host.secs").read()), "native"))
    except (OSError, ValueError) as e:
        print(f"{host_rel} (host): no results ({e}; see {cache}/host.log)")
        bad = True
for path, r, secs, how in runs:
    s = r["summary"]
    print(f"{r['run']['kernel']:<26} {s['total']} tests: {s['pass']} pass, {s['fail']} fail, {s['error']} error, "
          f"{s['skip']} skip, {s['intermittent']} intermittent; {secs:.1f} s ({how})")
    bad |= bool(s["fail"] or s["error"] or s["intermittent"])
for path, r, _, _ in runs:
    for t in r["tests"]:
        if t["verdict"] in ("fail", "error", "intermittent"):
            steps = [st for st in t.get("steps", []) if st.get("expected") is not None and st.get("expected") != st.get("outcome")]
            what = "; ".join(f"step {st['index']} {st.get('label') or st['kind']}: expected {st['expected']}, got {st['outcome']}" for st in steps)
            print(f"  {r['run']['kernel']}: {t['verdict'].upper()} {t['name']}: {what or t.get('reason') or t.get('problem')}")
with open(f"{cache}/results.list", "w") as f:
    f.write("".join(p + "\n" for p, _, _, _ in runs))
sys.exit(1 if bad else 0)
PY
[ $? = 0 ] || status=1
set -e
mapfile -t results <"$cache/results.list"

# The report of the runs; its first section is their history: the tests
# whose outcomes differ across the kernels, and where each changed.
if [ "${#results[@]}" -gt 1 ]; then
  "$bin" report --markdown "$cache/report.md" --html "$cache/report.html" "${results[@]}" || status=1
  echo
  awk 'NR > 1 && /^## /{exit} {print}' "$cache/report.md"
fi

if $bless; then
  for r in "${results[@]}"; do "$bin" bless --from "$r"; done
fi
echo "kernels.sh: ${#results[@]} runs under $accel in $(elapsed "$t0") s, exit $status"
exit $status
