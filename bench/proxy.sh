#!/usr/bin/env bash
# Proxy serving benchmark (issue 7, measurement 1): files already in the cache, served to many
# clients over loopback, by the real apt-p2p daemon, apt-cacher-ng, approx and nginx (sendfile;
# the reference for the limit: it serves the same files straight from disk).
#   - 1000 different 50 KB .deb files: wrk -t2 -c64 --latency, a random file per request (Lua).
#   - one 100 MB .deb file: wrk -t2 -c4 --latency.
# For each server and run: requests/s, MB/s, p50/p99 latency, server CPU seconds per GB served
# (utime+stime from /proc/PID/stat before and after, children included) and peak RSS. Runs are
# interleaved (server order rotates) and the table shows medians, with ratios against apt-p2p.
# Setup: bench/aptbench generates an unsigned repository (random-byte .debs listed with hashes in
# Packages.xz), nginx serves it as the mirror, and every cache is warmed by fetching Release,
# Packages.xz and every file through it once (apt-p2p needs the index to know the hashes).
# Then, in both modes, 500 concurrent clients for 60 s against apt-p2p alone (wrk -t2 -c500, the
# 50 KB files): requests/s, errors, and its resident memory (peak sampled every 0.25 s, and at the end).
# Usage: bash bench/proxy.sh quick|full   (quick: 3 runs x 5 s, 100 MB 3 s, 32-connection test once;
#        full: 5 runs x 10 s)
# Raw outputs: bench/out/proxy/.
set -euo pipefail
MODE=${1:-quick}
case $MODE in
quick) RUNS=3 SECS=5 BIGSECS=3 SMALL32RUNS=1 ;;
full) RUNS=5 SECS=10 BIGSECS=10 SMALL32RUNS=5 ;;
*) echo "usage: bench/proxy.sh quick|full" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
for t in wrk nginx curl apt-cacher-ng approx systemd-socket-activate setpriv python3; do
	command -v $t >/dev/null || { echo "proxy.sh: $t missing (bash scripts/install-deps.sh bench)" >&2; exit 1; }
done
OUT=bench/out/proxy
rm -rf "$OUT"; mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/bench-proxy.XXXXXX)
chmod 755 "$TMP"
source bench/aptbench/lib.sh
trap ab_cleanup EXIT INT TERM

ab_build
"$AB" gen -dir "$TMP/repo" -spec small:1000:51200,big:1:104857600
chmod -R a+rX "$TMP/repo"
ab_origin "$TMP/repo"
ab_aptp2p "$TMP/apt-p2p-cache"
ab_acng "$TMP/acng-cache"
ab_approx "$TMP/approx-cache"

declare -A BASE=([nginx]=$ORIGIN_URL [apt-p2p]=$APTP2P_URL [apt-cacher-ng]=$ACNG_URL [approx]=$APPROX_URL)
declare -A HOST=([nginx]=$ORIGIN_URL [apt-p2p]=http://127.0.0.1:$APTP2P_PORT [apt-cacher-ng]=http://127.0.0.1:$ACNG_PORT [approx]=$APPROX_URL)
SERVERS=(apt-p2p apt-cacher-ng approx nginx)

# Warm every cache: the indexes first (one at a time, in apt's order), then every file, twice
# (the second pass must be all hits). A server that fails here is reported and left out.
head -1 "$TMP/repo/list-big" >"$TMP/list-bigone"
OK=()
for s in "${SERVERS[@]}"; do
	b=${BASE[$s]}
	if curl -sf -o /dev/null "$b/debian/dists/stable/Release" &&
		curl -sf -o /dev/null "$b/debian/dists/stable/main/binary-amd64/Packages.xz" &&
		"$AB" get -base "$b" -list "$TMP/repo/list-all" -conns 4 -depth 10 >"$OUT/warm-$s.txt" 2>&1 &&
		"$AB" get -base "$b" -list "$TMP/repo/list-all" -conns 4 -depth 10 >>"$OUT/warm-$s.txt" 2>&1; then
		OK+=("$s")
	else
		echo "proxy.sh: $s could not be warmed: $(tail -1 "$OUT/warm-$s.txt" 2>/dev/null)" | tee -a "$OUT/failures.txt" >&2
	fi
done
# Sanity: the cached copies are byte-identical to the mirror's.
f=$(head -1 "$TMP/repo/list-small")
for s in "${OK[@]}"; do
	cmp -s "$TMP/repo/$f" <(curl -sf "${BASE[$s]}/$f") || { echo "proxy.sh: $s returns different bytes for $f" >&2; exit 1; }
done

for s in "${OK[@]}"; do
	ab_wrk_lua "$TMP/$s.lua" "$TMP/repo/list-small" "${BASE[$s]#"${HOST[$s]}"}/"
done

# sample_mem NAME: peak of the summed PSS of the server's processes until killed, in KiB.
sample_mem() {
	local peak=0 r
	while :; do
		r=$(ab_pss $(ab_pids "$1"))
		((r > peak)) && peak=$r && echo "$peak" >"$TMP/peak-$1"
		sleep 0.25
	done
}

# runwrk TEST NAME wrk-args...: one run; appends a result line to $OUT/results.
runwrk() {
	local test=$1 s=$2 c0 c1 sp hwm peak
	shift 2
	rm -f "$TMP/peak-$s"
	sample_mem "$s" &
	sp=$!
	c0=$(ab_cputicks $(ab_pids "$s"))
	wrk "$@" >"$TMP/wrk.out" 2>&1 || true
	sleep 0.5 # approx's per-connection processes exit and are reaped after wrk closes them
	c1=$(ab_cputicks $(ab_pids "$s"))
	kill "$sp"; wait "$sp" 2>/dev/null || true
	hwm=$(ab_kb VmHWM $(ab_pids "$s" | cut -d' ' -f1)) # the main (or master) process
	peak=$(cat "$TMP/peak-$s" 2>/dev/null || echo 0)
	cat "$TMP/wrk.out" >>"$OUT/wrk-$test-$s.txt"
	python3 - "$test" "$s" "$TMP/wrk.out" "$((c1 - c0))" "$peak" "$hwm" >>"$OUT/results" <<'PY'
import re, sys
test, s, path, ticks, peak, hwm = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t = open(path).read()
unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
tu = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}
def dur(x):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", x)
    return float(m.group(1)) * tu[m.group(2)]
m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", t)
if not m:
    print(test, s, "FAILED", file=sys.stderr)
    sys.exit(0)
reqs, secs = int(m.group(1)), dur(m.group(2) + m.group(3))
nbytes = float(m.group(4)) * unit[m.group(5)]
p50 = dur(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = dur(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: (.*)", t)
nerr = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in re.findall(r"\d+", errs.group(1))) if errs else 0)
cpu = ticks / 100
print(test, s, reqs / secs, nbytes / secs / 1e6, p50, p99, cpu / (nbytes / 1e9) if nbytes else 0, peak, reqs, nerr, hwm)
PY
	tail -1 "$OUT/results"
}

echo "== runs: test server req/s MB/s p50(s) p99(s) CPU-s/GB peak-PSS-KiB requests errors main-process-VmHWM-KiB"
for r in $(seq "$RUNS"); do
	# Rotate the order so that no server always runs first (the machine is shared).
	order=("${OK[@]:r%${#OK[@]}}" "${OK[@]:0:r%${#OK[@]}}")
	for s in "${order[@]}"; do
		runwrk small "$s" -t2 -c64 -d"${SECS}s" --latency -s "$TMP/$s.lua" "${HOST[$s]}"
	done
	# apt-p2p accepts at most 32 connections per client address (httpserve MaxConnsPerIP) and closes
	# the others at once; wrk's 64 connections from 127.0.0.1 exceed that, so also run at 32.
	for s in apt-p2p nginx; do
		((r <= SMALL32RUNS)) && [[ " ${OK[*]} " == *" $s "* ]] && runwrk small32 "$s" -t2 -c32 -d"${SECS}s" --latency -s "$TMP/$s.lua" "${HOST[$s]}"
	done
	for s in "${order[@]}"; do
		runwrk big "$s" -t2 -c4 -d"${BIGSECS}s" --latency "${BASE[$s]}/$(cat "$TMP/list-bigone")"
	done
done

# 500 clients, 60 s, apt-p2p alone.
if [[ " ${OK[*]} " == *" apt-p2p "* ]]; then
	(
		peak=0
		while :; do
			r=$(ab_kb VmRSS "$APTP2P_PID")
			((r > peak)) && peak=$r && echo "$peak" >"$TMP/rss-peak"
			sleep 0.25
		done
	) &
	sp=$!
	rss0=$(ab_kb VmRSS "$APTP2P_PID")
	wrk -t2 -c500 -d60s --latency -s "$TMP/apt-p2p.lua" "${HOST[apt-p2p]}" >"$OUT/wrk-500.txt" 2>&1 || true
	kill "$sp"; wait "$sp" 2>/dev/null || true
	python3 - "$OUT/wrk-500.txt" "$rss0" "$(cat "$TMP/rss-peak" 2>/dev/null || echo 0)" "$(ab_kb VmRSS "$APTP2P_PID")" <<'PY' | tee "$OUT/c500.txt"
import re, sys
t = open(sys.argv[1]).read()
rss0, peak, end = (int(x) / 1024 for x in sys.argv[2:5])
m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", t)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)) if m else 0
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: (.*)", t)
n = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in re.findall(r"\d+", errs.group(1))) if errs else 0)
p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
print(f"\n500 clients, 60 s, apt-p2p alone (wrk -t2 -c500 -d60s, 50 KB files): {m.group(1) if m else 'FAILED'} requests, "
      f"{rps:.0f} req/s, p99 {p99.group(1) if p99 else '?'}, errors (socket + non-2xx) {n}; "
      f"VmRSS before {rss0:.1f} MiB, peak during {peak:.1f} MiB, after {end:.1f} MiB")
PY
fi

{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "versions: apt-p2p $(git rev-parse --short HEAD); $(dpkg-query -W -f='${Package} ${Version}; ' apt-cacher-ng approx nginx-light wrk)"
} | tee "$OUT/machine.txt"
python3 - "$OUT/results" "$RUNS" "$SECS" "$BIGSECS" "${OK[@]}" <<'PY' | tee "$OUT/table.txt"
import statistics, sys
path, runs, secs, bigsecs, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
rows = [l.split() for l in open(path)]
def med(test, s, col):
    v = [float(r[col]) for r in rows if r[0] == test and r[1] == s]
    return statistics.median(v) if v else float("nan")
def errs(test, s):
    return f"{med(test, s, 9):.0f}"
for test, title in (("small", f"1000 x 50 KB files, wrk -t2 -c64 -d{secs}s, random file per request"),
                    ("small32", f"the same at 32 connections (apt-p2p's per-address limit), wrk -t2 -c32 -d{secs}s"),
                    ("big", f"one 100 MB file, wrk -t2 -c4 -d{bigsecs}s")):
    n = max(sum(1 for r in rows if r[0] == test and r[1] == s) for s in servers)
    print(f"\n{title}: medians of {n} runs")
    print("| server | req/s | MB/s | p50 | p99 | CPU s/GB | peak PSS MiB (all processes) | peak RSS MiB (main process) | req/s vs apt-p2p | CPU/GB vs apt-p2p | wrk socket errors + non-2xx per run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = "apt-p2p"
    for s in servers:
        if not any(r[0] == test and r[1] == s for r in rows):
            continue
        rps, mbs, p50, p99, cpu, pss, hwm = (med(test, s, c) for c in (2, 3, 4, 5, 6, 7, 10))
        print(f"| {s} | {rps:.0f} | {mbs:.0f} | {p50*1e3:.2f} ms | {p99*1e3:.2f} ms | {cpu:.2f} | {pss/1024:.1f} | {hwm/1024:.1f} | "
              f"{rps/med(test, base, 2):.2f} | {cpu/med(test, base, 6):.2f} | {errs(test, s)} |")
PY
