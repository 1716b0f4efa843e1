#!/usr/bin/env bash
# Runs the whole suite on more real Linux kernels: Debian's 6.1 and 6.12
# cloud kernels (downloaded and unpacked, never installed), booted under QEMU
# with an initramfs in which sockspec itself is PID 1. Each guest judges its
# run against cases/expected/linux.toml and prints its results on the serial
# console; they land in ci/.cache/kernels/results-<release>.json.
#
#   ci/kernels.sh            boot each kernel, print the summaries and the
#                            regression report between them; exit 1 if a
#                            kernel's run has failures
#   ci/kernels.sh --bless    also bless each kernel's results into linux.toml
#   KERNELS="pkg ..."        other kernel packages (default: the newest 6.1
#                            and 6.12 cloud kernels apt knows)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=ci/.cache/kernels
mkdir -p "$cache"
bless=false
[ "${1:-}" = "--bless" ] && bless=true

need_apt_update=true
apt_update() { if $need_apt_update; then apt-get update -qq; need_apt_update=false; fi; }
if ! command -v qemu-system-x86_64 >/dev/null; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi

newest() { apt-cache search --names-only "$1" 2>/dev/null | sort -V | tail -1 | cut -d' ' -f1; }
if [ -z "${KERNELS:-}" ]; then
  k61=$(newest '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$')
  k612=$(newest '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64$')
  if [ -z "$k61" ] || [ -z "$k612" ]; then
    apt_update
    k61=$(newest '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$')
    k612=$(newest '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64$')
  fi
  KERNELS="$k61 $k612"
fi

kernel_files=()
for pkg in $KERNELS; do
  dir="$cache/$pkg"
  if [ ! -d "$dir/boot" ]; then
    (cd "$cache" && rm -f "${pkg}"_*.deb && apt-get download -qq "$pkg" 2>/dev/null) || { apt_update; (cd "$cache" && apt-get download -qq "$pkg"); }
    dpkg-deb -x "$cache/${pkg}"_*.deb "$dir"
    rm -f "$cache/${pkg}"_*.deb
  fi
  kernel_files+=("$(ls "$dir"/boot/vmlinuz-*)")
done

# sockspec, static, as /init; the cases beside it.
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
cargo build --release -q --target x86_64-unknown-linux-musl
strip -o "$cache/init" target/x86_64-unknown-linux-musl/release/sockspec
python3 ci/initramfs.py "$cache/initrd.cpio" "$cache/init" cases cases

boot() { # accel kernel log [seconds]
  timeout "${4:-180}" qemu-system-x86_64 -accel "$1" -nographic -no-reboot -m 512 -smp 2 \
    -kernel "$2" -initrd "$cache/initrd.cpio" -append 'console=ttyS0 quiet panic=-1 SOCKSPEC_GUEST=1' -nic none \
    </dev/null >"$3" 2>&1 || true
}
finished() { grep -aq "SOCKSPEC RESULTS END" "$1"; }

# KVM only when a probe boot works: a nested /dev/kvm may hang Debian's
# kernels before they print anything, so the probe gets a short leash (a
# working KVM boot and run takes a few seconds; TCG takes about 15).
accel=tcg
if [ -w /dev/kvm ]; then
  boot kvm "${kernel_files[0]}" "$cache/kvm-probe.log" 25
  finished "$cache/kvm-probe.log" && accel=kvm
fi
echo "booting under $accel"

status=0
results=()
for k in "${kernel_files[@]}"; do
  log="$cache/console-$(basename "$k").log"
  start=$(date +%s.%N)
  boot "$accel" "$k" "$log"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  if ! finished "$log"; then
    echo "$(basename "$k"): no results on the console (see $log)"
    status=1
    continue
  fi
  out=$(python3 - "$log" "$cache" <<'PY'
import base64, gzip, json, re, sys
text = open(sys.argv[1], "rb").read().decode("latin1")
body = re.search(r"=====SOCKSPEC RESULTS BEGIN.*?=====\r?\n(.*?)=====SOCKSPEC RESULTS END=====", text, re.S).group(1)
results = json.loads(gzip.decompress(base64.b64decode("".join(body.split()))))
kernel = results["run"]["kernel"]
path = f"{sys.argv[2]}/results-{re.sub(r'[^A-Za-z0-9.+-]', '_', kernel)}.json"
json.dump(results, open(path, "w"), indent=1)
s = results["summary"]
print(path)
print(f"{kernel}: {s['total']} tests, {s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['skip']} skip "
      f"(suite {results['run']['duration_ms'] / 1000:.1f} s)")
sys.exit(0 if s["fail"] == 0 and s["error"] == 0 and s["intermittent"] == 0 else 3)
PY
  ) && ok=true || ok=false
  path=$(head -1 <<<"$out")
  results+=("$path")
  printf '%s; boot and run %.1f s under %s\n' "$(tail -1 <<<"$out")" "$secs" "$accel"
  $ok || status=1
done

if [ ${#results[@]} -ge 2 ]; then
  ./target/x86_64-unknown-linux-musl/release/sockspec report --baseline "${results[0]}" "${results[1]}" | head -40 || true
fi
if $bless; then
  for r in "${results[@]}"; do cargo run --release -q -- bless --from "$r"; done
fi
exit $status
