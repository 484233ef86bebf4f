#!/usr/bin/env bash
# WAN test bed benchmark (issue 12): real apt-get and real apt-p2p daemons in network namespaces
# (internal/netbed), the mirror behind a 100 Mbit/s, 40 ms round-trip link, daemons on a LAN.
# Driver: bench/wanbench (Go). Package set: bench/cold.sh's 41 packages (191 MB), as real .debs.
#   WAN profile, interleaved runs, apt-get download of all 41 packages timed:
#     (a) direct to the mirror, (b) through a fresh daemon with no peers,
#     (b') through a fresh daemon whose DHT peer lacks the files,
#     (c) through a fresh daemon whose LAN peer holds them all;
#   LAN profile (sub-ms mirror link): time to first byte of each package, cold, direct vs through
#     a daemon.
#   bench/wan.sh quick   3 runs (about 4 minutes)
#   bench/wan.sh full    7 runs (about 9 minutes)
#   COMPARE=/path/to/other/apt-p2p bash bench/wan.sh quick   the daemon cases for both builds, interleaved
# Further arguments go to the driver (e.g. -cases direct,lone -wan-only; bench/wanbench -h).
# Needs root (network namespaces). Output: the tables on stdout, raw results in bench/out/wan/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
shift || true
case $mode in
quick) runs=3 ;;
full) runs=7 ;;
*)
	echo "usage: bench/wan.sh quick|full" >&2
	exit 2
	;;
esac
if [[ $(id -u) -ne 0 ]]; then
	echo "wan: network namespaces need root" >&2
	exit 1
fi
bash scripts/install-deps.sh test
tmp=$(mktemp -d)
pid=
cleanup() {
	# The driver's daemons and apt-get runs die with it (Pdeathsig); it removes its namespaces
	# on SIGTERM, and the next run removes those of a run that was killed harder.
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
go build -trimpath -o "$tmp/apt-p2p" ./cmd/apt-p2p
go build -o "$tmp/wanbench" ./bench/wanbench
rm -rf bench/out/wan
mkdir -p bench/out/wan
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" |
	tee bench/out/wan/machine.txt
bins=$tmp/apt-p2p
if [[ -n ${COMPARE:-} ]]; then
	bins="tree=$tmp/apt-p2p,other=$COMPARE"
fi
timeout --signal=TERM 60m "$tmp/wanbench" -bin "$bins" -work "$tmp" -runs "$runs" -out bench/out/wan "$@" \
	> >(tee bench/out/wan/table.md) &
pid=$!
wait "$pid"
pid=
