#!/usr/bin/env bash
# Runs the comparison benchmarks and leaves raw outputs under bench/out/.
#   bench/run.sh quick   a subset that finishes in under 10 minutes (make bench)
#   bench/run.sh full    everything (make bench-full)
# Each script prints its tables; bench/RESULTS.md records the numbers with commands.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
mkdir -p bench/out
bash scripts/install-deps.sh bench
go build -trimpath -o bin/apt-p2p ./cmd/apt-p2p

run() {
	local script=$1
	shift
	if [[ -f bench/$script ]]; then
		echo "=== bench/$script $*"
		bash "bench/$script" "$@"
	else
		echo "=== bench/$script: missing" >&2
		return 1
	fi
}

case $mode in
quick)
	run components.sh quick
	run proxy.sh quick
	run cold.sh quick
	run dht.sh quick
	run swarm.sh quick
	run memory.sh quick
	;;
full)
	run components.sh full
	run proxy.sh full
	run cold.sh full
	run dht.sh full
	run swarm.sh full
	run memory.sh full
	;;
*)
	echo "usage: bench/run.sh quick|full" >&2
	exit 2
	;;
esac
