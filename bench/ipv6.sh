#!/usr/bin/env bash
# IPv6 and dual-stack lookups (issue 13 item 2): the engine/sim simulator's
# scenario of the dht section (half the nodes NATed, RTT 20–300 ms, 1% loss)
# with every node IPv4-only, IPv6-only, or dual-stack (a paired IPv4 and IPv6
# core per node: puts and gets on both networks, values merged, want n4+n6
# on the IPv6 side). Seeds 1–3; the medians go to bench/RESULTS.md (ipv6).
#   bench/ipv6.sh quick|full     (quick: 1 000 nodes; full: 2 000)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in
quick) nodes=1000 ;;
full) nodes=2000 ;;
*)
	echo "usage: bench/ipv6.sh quick|full" >&2
	exit 2
	;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dhtsim" ./cmd/dhtsim
for fam in ipv4 ipv6 dual; do
	for seed in 1 2 3; do
		echo "--- dhtsim -nodes $nodes -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 -puts 100 -gets 500 -profile default -families $fam -seed $seed"
		nice -n 10 "$tmp/dhtsim" -nodes "$nodes" -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 \
			-puts 100 -gets 500 -profile default -families "$fam" -seed "$seed"
	done
done
