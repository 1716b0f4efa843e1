#!/usr/bin/env bash
# Fetches Debian's newest cloud kernel of each suite (bullseye 5.10, bookworm
# 6.1, trixie 6.12, sid, experimental) and unpacks it under
# ci/.cache/kernels/<package>_<version>/ (never installed). Prints one line
# per kernel: `suite<TAB>package<TAB>version<TAB>path of vmlinuz`.
#
# apt runs with a private configuration under ci/.cache/apt (its own
# sources.list, state, cache and preferences, an empty dpkg status), so the
# machine's apt setup is read from nowhere and changed nowhere. The mirror is
# the one the machine's own sources name; Release files are verified with
# debian-archive-keyring's keys (never an insecure repository).
#
#   ci/fetch-kernels.sh             update the lists if older than a day
#   SUITES="trixie sid" ci/fetch-kernels.sh
#   FETCH_REFRESH=1                 update the lists now
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/ci/.cache/apt
kernels=$PWD/ci/.cache/kernels
suites=${SUITES:-bullseye bookworm trixie sid experimental}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "fetch-kernels: $keyring missing (package debian-archive-keyring)" >&2; exit 3; }

# The mirror the machine already uses (deb822 URIs: or one-line deb), else deb.debian.org.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
mirror=${mirror%/}
mirror=${mirror:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security

mkdir -p "$root"/{sources.list.d,preferences.d,apt.conf.d,state/lists/partial,cache/archives/partial} "$kernels"
: >"$root/status"
{
  for s in $suites; do
    # sid and experimental carry a Valid-Until a week ahead; a mirror that
    # stopped syncing serves them expired. The signature is still checked.
    case $s in
      sid|unstable|experimental) opts="signed-by=$keyring check-valid-until=no" ;;
      *) opts="signed-by=$keyring" ;;
    esac
    echo "deb [arch=amd64 $opts] $mirror $s main"
    case $s in
      bullseye|bookworm|trixie|forky) echo "deb [arch=amd64 $opts] $security $s-security main" ;;
    esac
  done
} >"$root/sources.list.new"
changed=false
cmp -s "$root/sources.list.new" "$root/sources.list" || { mv "$root/sources.list.new" "$root/sources.list"; changed=true; }
rm -f "$root/sources.list.new"

aptopts=(
  -o "Dir::Etc::SourceList=$root/sources.list"
  -o "Dir::Etc::SourceParts=$root/sources.list.d"
  -o "Dir::Etc::Preferences=$root/preferences"
  -o "Dir::Etc::PreferencesParts=$root/preferences.d"
  -o "Dir::Etc::Trusted=$root/trusted.gpg"
  -o "Dir::Etc::TrustedParts=$root/trusted.gpg.d"
  -o "Dir::State=$root/state"
  -o "Dir::State::status=$root/status"
  -o "Dir::Cache=$root/cache"
  -o "APT::Architecture=amd64"
  -o "APT::Architectures::=amd64"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "Acquire::Retries=2"
  -o "Acquire::http::Timeout=30"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
stamp=$root/state/updated
if $changed || [ -n "${FETCH_REFRESH:-}" ] || [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
  echo "fetch-kernels: apt-get update ($mirror; $suites)" >&2
  timeout 600 apt-get "${aptopts[@]}" -qq update >&2
  touch "$stamp"
  rm -f "$root/selection"
fi
# The choice only changes with the lists: reuse it while its kernels are here.
if [ -s "$root/selection" ] && [ "$root/selection" -nt "$stamp" ] &&
  cut -f4 "$root/selection" | xargs ls >/dev/null 2>&1 &&
  cut -f4 "$root/selection" | xargs -n1 dirname | sed 's|$|/veth.ko|' | xargs ls >/dev/null 2>&1; then
  cat "$root/selection"
  exit 0
fi

# unpack TMPDIR DEST PACKAGE VERSION: download and unpack the package into
# DEST/boot/vmlinuz-<release>, with the veth module beside it as
# DEST/boot/veth.ko (uncompressed): the cloud kernels build veth as a module,
# and the guests need it for IPv6 multicast. Since Debian 14 linux-image-*
# is a metapackage: the kernel is /usr/lib/modules/<release>/vmlinuz in the
# linux-binary-* it depends on, the modules are in linux-modules-*.
unpack() {
  local tmp=$1 dest=$2 pkg=$3 ver=$4 dep img ko
  rm -rf "$dest"
  (cd "$tmp" && timeout 600 apt-get "${aptopts[@]}" -qq download "$pkg=$ver" </dev/null >&2) || return 1
  dpkg-deb -x "$tmp/${pkg}_"*.deb "$dest" || return 1
  if ! ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1; then
    for dep in $(apt-cache "${aptopts[@]}" show "$pkg=$ver" </dev/null | grep -m1 '^Depends:' |
      grep -oE 'linux-(binary|modules)-[^ ,]+'); do
      echo "fetch-kernels: $pkg: fetching $dep" >&2
      (cd "$tmp" && timeout 600 apt-get "${aptopts[@]}" -qq download "$dep=$ver" </dev/null >&2) || return 1
      dpkg-deb -x "$tmp/${dep}_"*.deb "$dest" || return 1
    done
    img=$(ls "$dest"/usr/lib/modules/*/vmlinuz 2>/dev/null | head -1)
    [ -n "$img" ] || return 1
    mkdir -p "$dest/boot"
    mv "$img" "$dest/boot/vmlinuz-$(basename "$(dirname "$img")")"
  fi
  ko=$(find "$dest/lib/modules" "$dest/usr/lib/modules" -path '*/drivers/net/veth.ko*' 2>/dev/null | head -1)
  case $ko in
    *.ko) cp "$ko" "$dest/boot/veth.ko" ;;
    *.ko.xz) xz -dc "$ko" >"$dest/boot/veth.ko" ;;
    *.ko.zst) zstd -qdc "$ko" >"$dest/boot/veth.ko" ;;
    *.ko.gz) gzip -dc "$ko" >"$dest/boot/veth.ko" ;;
    *) echo "fetch-kernels: $pkg has no veth module (IPv6 multicast tests will skip)" >&2 ;;
  esac
  # Only the kernel image and veth are needed: the modules are most of the package.
  rm -rf "$dest/lib" "$dest/usr"
  ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1
}

{
# Every linux-image-*-cloud-amd64[-unsigned] per suite, from the lists apt
# verified; the newest version wins, the signed package on a tie.
for s in $suites; do
  files=$(apt-get "${aptopts[@]}" indextargets --format '$(CODENAME) $(SUITE) $(FILENAME)' 'Created-By: Packages' |
    awk -v s="$s" '$1 == s || $2 == s || $1 == s "-security" { print $3 }')
  [ -n "$files" ] || { echo "fetch-kernels: no package list for $s" >&2; exit 3; }
  # The suite's own kernel (source linux / linux-signed-amd64): bullseye
  # also carries a 6.1 backport (linux-6.1), which is not its kernel.
  cands=$(for f in $files; do /usr/lib/apt/apt-helper cat-file "$f"; echo; done | python3 -c '
import re, subprocess, sys
from functools import cmp_to_key
found = set()
for para in sys.stdin.read().split("\n\n"):
    f = dict(re.findall(r"^([\w-]+): (.*)$", para, re.M))
    p = f.get("Package", "")
    src = (f.get("Source") or p or "-").split()[0]
    if re.fullmatch(r"linux-image-[0-9].*-cloud-amd64(-unsigned)?", p) and src in ("linux", "linux-signed-amd64"):
        found.add((f["Version"], not p.endswith("-unsigned"), p))
def cmp(a, b):
    if a[0] != b[0]:
        return -1 if subprocess.run(["dpkg", "--compare-versions", a[0], "lt", b[0]]).returncode == 0 else 1
    return (a[1] > b[1]) - (a[1] < b[1])
for v, _, p in sorted(found, key=cmp_to_key(cmp), reverse=True):
    print(p, v)
')
  [ -n "$cands" ] || { echo "fetch-kernels: no cloud kernel in $s" >&2; exit 3; }
  # The newest whose package the mirror has (a mirror may list a file it
  # does not serve yet), the signed package before the unsigned one.
  got=
  while read -r pkg ver; do
    dir="$kernels/${pkg}_${ver//[^A-Za-z0-9.+-]/_}"
    if ls "$dir"/boot/vmlinuz-* "$dir"/boot/veth.ko >/dev/null 2>&1; then got=1; break; fi
    echo "fetch-kernels: downloading $pkg $ver ($s)" >&2
    tmp=$(mktemp -d "$kernels/dl.XXXXXX")
    if unpack "$tmp" "$dir.part" "$pkg" "$ver"; then
      rm -rf "$dir"
      mv "$dir.part" "$dir"
      rm -rf "$tmp"
      got=1
      break
    fi
    rm -rf "$tmp" "$dir.part"
    echo "fetch-kernels: $pkg $ver: not downloadable or no /boot/vmlinuz; trying the next" >&2
  done <<<"$cands"
  [ -n "$got" ] || { echo "fetch-kernels: no cloud kernel of $s could be fetched" >&2; exit 3; }
  printf '%s\t%s\t%s\t%s\n' "$s" "$pkg" "$ver" "$(ls "$dir"/boot/vmlinuz-*)"
done
} >"$root/selection.new"
mv "$root/selection.new" "$root/selection"
cat "$root/selection"
