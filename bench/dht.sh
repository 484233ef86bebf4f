#!/usr/bin/env bash
# DHT lookup latency (issue 7, measurement 4): the engine/sim simulator at
# 1 000 (quick) or 1 000 and 10 000 (full) nodes, default versus classic
# timeouts, issue 3's scenario (50% NATed/unresponsive, RTT 20–300 ms, 1% loss).
#   bench/dht.sh quick|full
# Per-get samples: bench/out/dht-<nodes>.csv (written by bench/dhtplot, which
# uses the engine/sim API because cmd/dhtsim prints only percentiles).
# Plot: bench/dht-latency-cdf.png for full runs, the one RESULTS.md shows (CDF, log x axis, the
# original's 17 s mean marked); a quick run plots to bench/out/dht-latency-cdf-quick.png and leaves it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
case $mode in
quick) sizes=(1000) ;;
full) sizes=(1000 10000) ;;
*)
	echo "usage: bench/dht.sh quick|full" >&2
	exit 2
	;;
esac
mkdir -p bench/out
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dhtplot" ./bench/dhtplot
csvs=()
for n in "${sizes[@]}"; do
	echo "--- dhtplot -nodes $n -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 -puts 200 -gets 1000 -seed 1"
	# A 10 000-node run of both profiles takes about 2 minutes of one core.
	timeout 20m "$tmp/dhtplot" -nodes "$n" -unresponsive 0.5 -rtt-min 20ms -rtt-max 300ms -loss 0.01 \
		-puts 200 -gets 1000 -seed 1 -out "bench/out/dht-$n.csv" | tee "bench/out/dht-$n.txt"
	csvs+=("bench/out/dht-$n.csv")
done
py=/usr/bin/python3 # python3-matplotlib is installed for the system interpreter
[[ -x $py ]] || py=python3
png=bench/dht-latency-cdf.png
[[ $mode == full ]] || png=bench/out/dht-latency-cdf-quick.png
"$py" bench/plot/dht_cdf.py "$png" "${csvs[@]}"
