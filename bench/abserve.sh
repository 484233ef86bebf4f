#!/usr/bin/env bash
# A/B of the cached-file serving path: nginx against one or more apt-p2p binaries, interleaved.
#   BINS="bin/apt-p2p /tmp/apt-p2p.old" RUNS=5 bash bench/abserve.sh
# Each binary gets its own cache, warmed like bench/proxy.sh (Release, Packages.xz, then every
# file twice), then every round runs wrk -t2 -c64 -d5s (a random one of 1000 x 50 KB files per
# request) against nginx and each binary in turn, and prints per server: requests/s, the
# server's CPU per request (ns, utime+stime from /proc), wrk's own CPU per request (ns, from
# /usr/bin/time) and the machine's idle CPU % during the run (vmstat). For comparing builds: the
# machine's noise is several percent between rounds, so read the same round's numbers together.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BINS=${BINS:-bin/apt-p2p}
for t in wrk nginx curl vmstat /usr/bin/time; do
	command -v $t >/dev/null || { echo "abserve.sh: $t missing (bash scripts/install-deps.sh bench)" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/bench-abserve.XXXXXX)
chmod 755 "$TMP"
source bench/aptbench/lib.sh
trap ab_cleanup EXIT INT TERM
go build -o "$TMP/aptbench" ./bench/aptbench
AB=$TMP/aptbench
"$AB" gen -dir "$TMP/repo" -spec small:1000:51200 >/dev/null
chmod -R a+rX "$TMP/repo"
ab_origin "$TMP/repo"
declare -A PID HOSTURL
VS=()
i=0
for bin in $BINS; do
	v=$i
	i=$((i + 1))
	VS+=("$v")
	APTP2P_BIN=$bin
	ab_aptp2p "$TMP/cache-$v"
	PID[$v]=$APTP2P_PID
	HOSTURL[$v]=http://127.0.0.1:$APTP2P_PORT
	curl -sf -o /dev/null "$APTP2P_URL/debian/dists/stable/Release"
	curl -sf -o /dev/null "$APTP2P_URL/debian/dists/stable/main/binary-amd64/Packages.xz"
	"$AB" get -base "$APTP2P_URL" -list "$TMP/repo/list-all" -conns 4 -depth 10 >/dev/null
	"$AB" get -base "$APTP2P_URL" -list "$TMP/repo/list-all" -conns 4 -depth 10 >/dev/null
	ab_wrk_lua "$TMP/$v.lua" "$TMP/repo/list-small" "${APTP2P_URL#"${HOSTURL[$v]}"}/"
	echo "server $v: $bin"
done
ab_wrk_lua "$TMP/nginx.lua" "$TMP/repo/list-small" /
HOSTURL[nginx]=$ORIGIN_URL
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
for r in $(seq "$RUNS"); do
	for v in nginx "${VS[@]}"; do
		if [[ $v == nginx ]]; then pids="$ORIGIN_PID $(pgrep -P "$ORIGIN_PID" | tr '\n' ' ')"; else pids=${PID[$v]}; fi
		c0=$(cpu $pids)
		(vmstat 1 5 | tail -4 | awk '{id += $15} END {printf "%d", id / NR}' >"$TMP/idle.txt") &
		vm=$!
		/usr/bin/time -f "%U %S" -o "$TMP/wt.txt" wrk -t2 -c64 -d5s -s "$TMP/$v.lua" "${HOSTURL[$v]}" >"$TMP/w.txt" 2>&1
		c1=$(cpu $pids)
		wait $vm
		n=$(awk '/requests in/{print $1}' "$TMP/w.txt")
		rps=$(awk '/Requests\/sec/{print int($2)}' "$TMP/w.txt")
		err=$(grep -E "Socket errors|Non-2xx" "$TMP/w.txt" | tr '\n' ' ' || true)
		# /proc CPU is in clock ticks (100 per second): ns per request = ticks * 1e7 / requests.
		echo "round $r server $v req/s $rps server_ns/req $(((c1 - c0) * 10000000 / n)) wrk_ns/req $(awk -v n="$n" '{printf "%d", ($1 + $2) * 1e9 / n}' "$TMP/wt.txt") idle% $(cat "$TMP/idle.txt") $err"
	done
done
