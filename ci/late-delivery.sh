#!/usr/bin/env bash
# Runs the suite where TCP data is lost once. In a network namespace of its
# own, nftables drops the first transmission of every segment with PSH set
# (the last segment of each write, so all of the small writes cases make; one
# set entry per ports and sequence number), so that data arrives late, with
# TCP's retransmission, some 200 ms later. A case that reads, closes or judges
# before its data has arrived, without waiting for it (a race that loopback's
# quick delivery hides), fails here; CI once saw one such race
# (linger::shutdown on 6.1 under QEMU).
#
#   ci/late-delivery.sh     exits as `sockspec run` does (1 on a failure or
#                           an error), and 1 if the rule dropped nothing
#
# Linux, as root; installs nftables and iproute2 when missing. The tests share
# the namespace (--isolation host), so those that set sysctls or need a veth
# of their own are skipped, as in any host run. Left out: tests that queue
# megabytes (`fill`, data=unsent), which cannot finish in their deadline
# when every segment is resent after a timeout. Where python3 is installed,
# the suite runs a second time with its steps in the Python helper, whose
# `acked` and `readable` must wait as sockspec's own do.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends nftables iproute2 >/dev/null
fi
cargo build --release -q
bin=$(pwd)/target/release/sockspec

# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --net bash -euo pipefail -c '
ip link set lo up
nft -f ci/late-delivery.nft
rc=0
"$1" run --isolation host --skip data=unsent --label "late delivery" || rc=$?
if command -v python3 >/dev/null; then
  "$1" run --isolation host --skip data=unsent --agent python --label "late delivery, Python helper" || rc=$?
fi
# The rule did drop data (or every test passed without meeting it).
dropped=$(nft list ruleset | sed -n "s/.*counter packets \([0-9]*\).*/\1/p")
echo "late-delivery: $dropped first transmissions dropped"
[ "${dropped:-0}" -gt 0 ] || { echo "late-delivery: the rule dropped nothing" >&2; exit 1; }
exit "$rc"
' _ "$bin"
