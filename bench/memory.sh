#!/usr/bin/env bash
# Memory (issue 7, measurement 6): resident memory of the apt-p2p daemon beside apt-cacher-ng's,
# in the same states, one after the other in one process each:
#   idle        started on an empty cache, 3 s later
#   bookworm    after Release and Packages.xz of Debian bookworm main/amd64 were fetched through it
#               (this machine's /var/lib/apt/lists copy, lz4 -> xz, served unsigned by a local
#               nginx; ~63,000 packages)
#   +10k fetched  right after 10,000 small .debs (4 KiB each, listed in their own Packages.xz) were
#               fetched through it (4 connections x 10 pipelined)
#   +10k files  once they are cached: for apt-p2p, when /stats.json lists no active download (the
#               time that takes is reported too), then 3 s
#   restarted   the same cache and state, process restarted, 5 s later
# Reported: VmRSS (and the peak, VmHWM) from /proc/PID/status, medians over runs; the peak over the
# whole sequence (the larger VmHWM of the two processes); apt-p2p's commit drain time; the size of
# the daemon's binary.
# approx is not measured: it runs one process per connection under inetd, nothing stays resident.
# Usage: bash bench/memory.sh quick|full   (quick: 1 run; full: 3 runs)
# Raw outputs: bench/out/memory/.
set -euo pipefail
MODE=${1:-quick}
case $MODE in
quick) RUNS=1 ;;
full) RUNS=3 ;;
*) echo "usage: bench/memory.sh quick|full" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
for t in nginx curl apt-cacher-ng lz4 xz python3; do
	command -v $t >/dev/null || { echo "memory.sh: $t missing (bash scripts/install-deps.sh bench)" >&2; exit 1; }
done
LISTS=/var/lib/apt/lists
BW=$(ls $LISTS/*debian_dists_bookworm_main_binary-amd64_Packages* 2>/dev/null | head -1 || true)
[[ -n $BW ]] || { echo "memory.sh: no bookworm main amd64 Packages in $LISTS (apt-get update with a bookworm source first)" >&2; exit 1; }
OUT=bench/out/memory
mkdir -p "$OUT"
rm -f "$OUT"/results "$OUT"/table.txt "$OUT"/drain.txt "$OUT"/cache-size.txt "$OUT"/fetch-*.txt
TMP=$(mktemp -d /tmp/bench-memory.XXXXXX)
chmod 755 "$TMP"
source bench/aptbench/lib.sh
trap ab_cleanup EXIT INT TERM

ab_build
"$AB" gen -dir "$TMP/repo" -spec tiny:10000:4096 >/dev/null
# The bookworm index, recompressed to xz once and kept under bench/out (it is ~10 MB).
bwxz=$OUT/bookworm-Packages.xz
if [[ ! -s $bwxz || $bwxz -ot $BW ]]; then
	case $BW in
	*.lz4) lz4 -dc "$BW" ;;
	*.xz) xz -dc "$BW" ;;
	*.gz) gzip -dc "$BW" ;;
	*) cat "$BW" ;;
	esac | xz -T2 -3 >"$bwxz.tmp"
	mv "$bwxz.tmp" "$bwxz"
fi
dist=$TMP/repo/debian/dists/bookworm
mkdir -p "$dist/main/binary-amd64"
cp "$bwxz" "$dist/main/binary-amd64/Packages.xz"
"$AB" release -dir "$dist" -suite bookworm main/binary-amd64/Packages.xz
NPKG=$(xz -dc "$bwxz" | grep -c '^Package: ')
chmod -R a+rX "$TMP/repo"
ab_origin "$TMP/repo"

# state NAME STATE RUN PID: records VmRSS and VmHWM.
state() {
	local rss hwm
	rss=$(ab_kb VmRSS "$4")
	hwm=$(ab_kb VmHWM "$4")
	echo "$1 $2 $3 $rss $hwm" | tee -a "$OUT/results"
}
fetch_indexes() { # BASE SUITE
	curl -sf -o /dev/null "$1/debian/dists/$2/Release"
	curl -sf -o /dev/null "$1/debian/dists/$2/main/binary-amd64/Packages.xz"
}

echo "== server state run VmRSS-KiB VmHWM-KiB"
for r in $(seq "$RUNS"); do
	for s in apt-p2p apt-cacher-ng; do
		c=$TMP/cache-$s
		rm -rf "$c"
		start() {
			if [[ $s == apt-p2p ]]; then ab_aptp2p "$c"; URL=$APTP2P_URL; PID=$APTP2P_PID
			else ab_acng "$c"; URL=$ACNG_URL; PID=$ACNG_PID; fi
		}
		stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
		start
		sleep 3
		state "$s" idle "$r" "$PID"
		fetch_indexes "$URL" bookworm
		sleep 3
		state "$s" bookworm "$r" "$PID"
		fetch_indexes "$URL" stable
		"$AB" get -base "$URL" -list "$TMP/repo/list-all" -conns 4 -depth 10 | tee -a "$OUT/fetch-$s.txt"
		state "$s" +10k-fetched "$r" "$PID"
		if [[ $s == apt-p2p ]]; then
			# apt has every byte once the responses end, but apt-p2p still commits each file to
			# its store (fsyncs under one lock): wait until no download is active.
			t0=$(date +%s.%N)
			for _ in $(seq 600); do
				n=$(curl -s "http://127.0.0.1:$APTP2P_PORT/stats.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("downloads_active") or []))' 2>/dev/null || echo x)
				[[ $n == 0 ]] && break
				sleep 0.5
			done
			echo "apt-p2p drain $r $(python3 -c "import time; print(round(time.time() - $t0, 1))") s (downloads still active: $n)" | tee -a "$OUT/drain.txt"
		fi
		sleep 3
		state "$s" +10k-files "$r" "$PID"
		stop
		start
		sleep 5
		state "$s" restarted "$r" "$PID"
		# The cache really holds the files: a second pass is served without the mirror.
		"$AB" get -base "$URL" -list "$TMP/repo/list-all" -conns 4 -depth 10 >>"$OUT/fetch-$s.txt"
		state "$s" restarted+served "$r" "$PID"
		stop
		du -sk "$c" | awk -v s="$s" '{print s, "cache-KiB", $1}' >>"$OUT/cache-size.txt"
		rm -rf "$c"
	done
done

ls -l "$APTP2P_BIN" | awk '{print "apt-p2p binary bytes", $5}' | tee "$OUT/binary.txt"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); bookworm index: $NPKG packages, $(stat -c %s "$bwxz") bytes xz" | tee "$OUT/machine.txt"
python3 - "$OUT/results" "$RUNS" <<'PY' | tee "$OUT/table.txt"
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(s, st, col):
    v = [int(r[col]) for r in rows if r[0] == s and r[1] == st]
    return statistics.median(v) / 1024 if v else float("nan")
print(f"\nresident memory, MiB, medians of {sys.argv[2]} run(s)")
print("| state | apt-p2p VmRSS | apt-p2p VmHWM | apt-cacher-ng VmRSS | apt-cacher-ng VmHWM | RSS apt-p2p / apt-cacher-ng |")
print("|---|---|---|---|---|---|")
for st in ("idle", "bookworm", "+10k-fetched", "+10k-files", "restarted", "restarted+served"):
    a, ah, b, bh = med("apt-p2p", st, 3), med("apt-p2p", st, 4), med("apt-cacher-ng", st, 3), med("apt-cacher-ng", st, 4)
    print(f"| {st} | {a:.1f} | {ah:.1f} | {b:.1f} | {bh:.1f} | {a / b:.2f} |")
def peak(s):
    # per run: the larger VmHWM of the first process (states up to +10k-files) and the restarted one
    runs = sorted({r[2] for r in rows if r[0] == s})
    v = [max(int(r[4]) for r in rows if r[0] == s and r[2] == run) for run in runs]
    return statistics.median(v) / 1024 if v else float("nan")
a, b = peak("apt-p2p"), peak("apt-cacher-ng")
print(f"| peak over the sequence (VmHWM) | | {a:.1f} | | {b:.1f} | {a / b:.2f} |")
PY
cat "$OUT/drain.txt" "$OUT/binary.txt"
