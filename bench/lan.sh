#!/usr/bin/env bash
# LAN discovery benchmark (issue 13 item 3): real apt-p2p daemons in network namespaces
# (internal/netbed, 10.240.0.0/16 and fd42::/16). Driver: bench/lanbench (Go). Each scenario
# compares LAN discovery out of the box (no BOOTSTRAP, nothing configured) with what a user
# would otherwise set up: LAN_DISCOVERY = no, LOCAL_OK = yes, one daemon a bootstrap node and
# the others BOOTSTRAP = its IPv4 and IPv6 addresses.
#   share   N=3 machines on a dual-stack LAN, the mirror behind 100 Mbit/s and 40 ms: from launch,
#           the DHT forms, apt-get on machine 1 fetches 4 .debs (31.5 MiB) from the mirror, then
#           apt-get on machines 2 and 3 takes every .deb from the LAN peers
#   form    time from launching N daemons until every routing table (IPv4 and IPv6) holds the
#           N-1 others
#   steady  datagrams each daemon sends per hour once the DHT formed (full only)
#   prefer  how a download held by a LAN peer and by a remote peer (40 ms, 100 Mbit/s) is shared
#           between them by the present source ranking (full only)
#   bench/lan.sh quick   5 runs of share, 5 runs of form (3 and 10 daemons)      (~1-2 min)
#   bench/lan.sh full    9 runs of share, 9 of form, 5 min steady, 5 runs of prefer (~15 min)
# The schedule itself (messages per daemon per hour, on a virtual clock, up to 100 daemons):
#   go test -run '^$' -bench LANHour -benchtime 3x ./internal/lan/
# Further arguments go to the driver (bench/lanbench -h). Needs root (network namespaces).
# Output: the tables on stdout, raw results in bench/out/lan/. The namespaces are removed on
# exit, on error and on interrupt (a driver killed with SIGKILL: by the cleanup below).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
shift || true
case $mode in
quick) args=(-share-runs 5 -runs 5 -steady 0 -prefer-runs 0) ;;
full) args=(-share-runs 9 -runs 9 -steady 5m -prefer-runs 5) ;;
*)
	echo "usage: bench/lan.sh quick|full" >&2
	exit 2
	;;
esac
if [[ $(id -u) -ne 0 ]]; then
	echo "lan: network namespaces need root" >&2
	exit 1
fi
bash scripts/install-deps.sh test
tmp=$(mktemp -d)
pid=
cleanup() {
	# The driver's daemons and apt-get runs die with it (Pdeathsig); it removes its namespaces
	# on SIGTERM and on error. Whatever a driver that died harder left, -clean removes (only
	# namespaces of this test bed whose creating process is gone).
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [[ -x $tmp/lanbench ]]; then
		"$tmp/lanbench" -clean || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
go build -trimpath -o "$tmp/apt-p2p" ./cmd/apt-p2p
go build -o "$tmp/lanbench" ./bench/lanbench
rm -rf bench/out/lan
mkdir -p bench/out/lan
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" |
	tee bench/out/lan/machine.txt
go test -run '^$' -bench LANHour -benchtime 3x ./internal/lan/ | grep Benchmark | tee bench/out/lan/schedule.txt
timeout --signal=TERM 40m "$tmp/lanbench" -bin "$tmp/apt-p2p" -work "$tmp" -out bench/out/lan "${args[@]}" "$@" \
	> >(tee bench/out/lan/table.md) &
pid=$!
wait "$pid"
pid=
