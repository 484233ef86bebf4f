#!/usr/bin/env bash
# Swarm benchmark (issue 7, measurement 3): N apt-p2p daemons on 127.0.0.2..
# each fetch the same package set from a counting test mirror, all at once and
# staggered (one client every 2 s), beside the same clients straight to the
# mirror and through one shared apt-cacher-ng. Driver: bench/swarm (Go).
#   bench/swarm.sh quick   16 daemons, 30 packages (~70 MB), about 2 minutes
#   bench/swarm.sh full    16 and 32 daemons, 60 packages (~270 MB); 16 daemons
#                          also with MIN_DOWNLOAD_PEERS=3 (the default), and 16
#                          daemons with the quick set behind a 25 MB/s mirror
#                          (about 15 minutes in all)
# Output: the table on stdout, bench/out/swarm-<mode>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in
quick) args=(-set quick -daemons 16 -min-peers 1) ;;
full) args=(-set full -daemons 16,32 -min-peers 1) ;;
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
	# The default MIN_DOWNLOAD_PEERS=3 adds the mirror as a source while fewer
	# than 3 peers have a file: more mirror bytes, shown for comparison.
	run -set full -daemons 16 -min-peers 3 -systems apt-p2p -json "bench/out/swarm-full-minpeers3.json"
	# A mirror (or site uplink) of 25 MB/s (200 Mbit/s) in total, shared by
	# every client: where offloading it also saves time.
	run -set quick -daemons 16 -min-peers 1 -mirror-rate 25000000 -json "bench/out/swarm-full-ratelimited.json"
fi
