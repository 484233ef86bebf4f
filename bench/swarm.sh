#!/usr/bin/env bash
# Swarm benchmark (issue 7, measurement 3): N apt-p2p daemons on 127.0.0.2..
# each fetch the same package set from a counting test mirror, all at once and
# staggered (one client every 2 s), beside the same clients straight to the
# mirror and through one shared apt-cacher-ng. Driver: bench/swarm (Go).
#   bench/swarm.sh quick   16 daemons, 30 packages (~70 MB), about 2 minutes
#   bench/swarm.sh full    issue 10's runs: 16 and 32 daemons with the quick
#                          set, the mirror unlimited and at 25 MB/s, all on
#                          loopback; then 16 machines in network namespaces of
#                          their own on one LAN, behind links of 1 Gbit/s and
#                          of 100 Mbit/s (internal/netbed; needs root); about
#                          15 minutes in all
# Output: the table on stdout, bench/out/swarm-<mode>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in
quick) args=(-set quick -daemons 16) ;;
full) args=(-set quick -daemons 16,32) ;;
*)
	echo "usage: bench/swarm.sh quick|full" >&2
	exit 2
	;;
esac
command -v apt-cacher-ng >/dev/null || [[ -x /usr/sbin/apt-cacher-ng ]] || {
	echo "swarm: apt-cacher-ng is missing (bash scripts/install-deps.sh bench)" >&2
	exit 1
}
mkdir -p bench/out
tmp=$(mktemp -d)
pid=
cleanup() {
	# The driver's daemons and apt-cacher-ng die with it (Pdeathsig).
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
go build -trimpath -o "$tmp/apt-p2p" ./cmd/apt-p2p
go build -o "$tmp/swarm" ./bench/swarm
run() {
	echo "--- swarm $*"
	timeout --signal=TERM 40m "$tmp/swarm" -bin "$tmp/apt-p2p" -work "$tmp" "$@" &
	pid=$!
	wait "$pid"
	pid=
}
run "${args[@]}" -json "bench/out/swarm-$mode.json"
if [[ $mode == full ]]; then
	# A mirror (or site uplink) of 25 MB/s (200 Mbit/s) in total, shared by
	# every client: where offloading it also saves time.
	run -set quick -daemons 16,32 -modes simultaneous -mirror-rate 25000000 -json "bench/out/swarm-full-ratelimited.json"
	# Machines of their own: each daemon (or client, or apt-cacher-ng) in a
	# network namespace behind a link of its own, as on an office or lab LAN.
	run -set quick -daemons 16 -modes simultaneous -host-rate 1000000000 -json "bench/out/swarm-full-lan1g.json"
	run -set quick -daemons 16 -modes simultaneous -host-rate 100000000 -json "bench/out/swarm-full-lan100m.json"
fi
