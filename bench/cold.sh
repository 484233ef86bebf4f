#!/usr/bin/env bash
# Cold fetch overhead (issue 7, measurement 2): one client, empty caches, a realistic mix of 41
# packages (8 x 30 KB, 8 x 100 KB, 8 x 300 KB, 6 x 1 MB, 5 x 3 MB, 3 x 8 MB, 2 x 20 MB, 1 x 100 MB;
# 191 MB, in a fixed shuffled order) fetched
#   - straight from the test mirror (nginx, sendfile),
#   - through apt-p2p with no peers (a lone daemon: its DHT lookups find nothing),
#   - through apt-cacher-ng and approx, cold,
# each both one request at a time on one keep-alive connection ("seq") and apt's way, up to 10
# pipelined requests on one connection ("pipe", Acquire::http::Pipeline-Depth=10). Every run of
# a cache starts it afresh on an empty cache and first fetches Release and Packages.xz through it
# (not timed: that is apt update). Reported: median wall time of the whole set, median over runs
# of the per-file time to first byte (median and p90 over files), and the ratio to the mirror.
# Usage: bash bench/cold.sh quick|full   (quick: 3 runs; full: 7 runs)
#        COMPARE=/path/to/other/apt-p2p bash bench/cold.sh quick   adds that build as "apt-p2p-other"
# Raw outputs: bench/out/cold/.
set -euo pipefail
MODE=${1:-quick}
case $MODE in
quick) RUNS=3 ;;
full) RUNS=7 ;;
*) echo "usage: bench/cold.sh quick|full" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
for t in nginx curl apt-cacher-ng approx systemd-socket-activate setpriv python3; do
	command -v $t >/dev/null || { echo "cold.sh: $t missing (bash scripts/install-deps.sh bench)" >&2; exit 1; }
done
OUT=bench/out/cold
rm -rf "$OUT"; mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/bench-cold.XXXXXX)
chmod 755 "$TMP"
source bench/aptbench/lib.sh
trap ab_cleanup EXIT INT TERM

ab_build
"$AB" gen -dir "$TMP/repo" -spec c30k:8:30720,c100k:8:102400,c300k:8:307200,c1m:6:1048576,c3m:5:3145728,c8m:3:8388608,c20m:2:20971520,c100m:1:104857600
chmod -R a+rX "$TMP/repo"
python3 -c 'import random,sys; l=open(sys.argv[1]).read().split(); random.Random(7).shuffle(l); print("\n".join(l))' \
	"$TMP/repo/list-all" >"$TMP/list"
ab_origin "$TMP/repo"

# start NAME RUN: a fresh instance of cache NAME on an empty cache, with the indexes fetched.
start() {
	local c=$TMP/cache-$1-$2
	case $1 in
	apt-p2p) ab_aptp2p "$c"; URL=$APTP2P_URL; PID=$APTP2P_PID ;;
	apt-p2p-other) APTP2P_BIN=$COMPARE ab_aptp2p "$c"; URL=$APTP2P_URL; PID=$APTP2P_PID ;;
	apt-cacher-ng) ab_acng "$c"; URL=$ACNG_URL; PID=$ACNG_PID ;;
	approx) ab_approx "$c"; URL=$APPROX_URL; PID=$APPROX_PID ;;
	esac
	curl -sf -o /dev/null "$URL/debian/dists/stable/Release"
	curl -sf -o /dev/null "$URL/debian/dists/stable/main/binary-amd64/Packages.xz"
}
stop() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	rm -rf "$TMP"/cache-*
}

declare -A ARGS=([seq]="-conns 1 -depth 1" [pipe]="-conns 1 -depth 10")
SERVERS="mirror apt-p2p apt-cacher-ng approx"
[[ -n ${COMPARE:-} ]] && SERVERS="mirror apt-p2p apt-p2p-other apt-cacher-ng approx"
echo "== runs: mode server wall-seconds reconnects (per-file times in $OUT/<mode>-<server>-<run>.tsv)"
for r in $(seq "$RUNS"); do
	for m in seq pipe; do
		for s in $SERVERS; do
			if [[ $s == mirror ]]; then
				URL=$ORIGIN_URL
			else
				start "$s" "$r"
			fi
			# shellcheck disable=SC2086
			if res=$("$AB" get -q -base "$URL" -list "$TMP/list" ${ARGS[$m]} -out "$OUT/$m-$s-$r.tsv" 2>&1); then
				echo "$m $s $res" | tee -a "$OUT/results"
			else
				echo "$m $s FAILED: $res" | tee -a "$OUT/failures"
			fi
			[[ $s == mirror ]] || stop
		done
	done
done

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/machine.txt"
python3 - "$OUT" "$RUNS" $SERVERS <<'PY' | tee "$OUT/table.txt"
import glob, os, statistics, sys
out, runs, servers = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [l.split() for l in open(os.path.join(out, "results")) if "FAILED" not in l]
def wall(m, s):
    v = [float(r[2]) for r in rows if r[0] == m and r[1] == s]
    return statistics.median(v) if v else float("nan")
def ttfb(m, s, small):
    p50s, p90s = [], []
    for f in sorted(glob.glob(os.path.join(out, f"{m}-{s}-*.tsv"))):
        t = [float(l.split("\t")[3]) for l in open(f) if (int(l.split("\t")[2]) <= 512 * 1024) == small or small is None]
        if t:
            t.sort()
            p50s.append(t[len(t) // 2]); p90s.append(t[(len(t) - 1) * 9 // 10])
    return (statistics.median(p50s) if p50s else float("nan"), statistics.median(p90s) if p90s else float("nan"))
print(f"\n41 files, 191 MB, empty caches, medians of {runs} runs")
print("| mode | server | total time | vs mirror | TTFB p50 (all files) | TTFB p90 | TTFB p50 (files <= 512 KiB) | TTFB p50 vs mirror |")
print("|---|---|---|---|---|---|---|---|")
for m, title in (("seq", "one at a time"), ("pipe", "pipelined x10 (apt)")):
    for s in servers:
        w = wall(m, s)
        a50, a90 = ttfb(m, s, None)
        s50, _ = ttfb(m, s, True)
        m50, _ = ttfb(m, "mirror", None)
        print(f"| {title} | {s} | {w:.3f} s | {w / wall(m, 'mirror'):.2f} | {a50*1e3:.2f} ms | {a90*1e3:.2f} ms | {s50*1e3:.2f} ms | {a50 / m50:.1f} |")
PY
