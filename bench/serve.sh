#!/usr/bin/env bash
# Serving benchmark: apt-p2p's HTTP serving code (bench/servebench: httpserve.ServeFile for apt,
# httpserve.PeerHandler for /~/ peers) against nginx (Debian package, sendfile on) on loopback.
#   - many 50 KB files: wrk, 64 connections, 2 threads, random file per request, 10 s per run;
#     requests/s, transfer rate and p99 latency, median of RUNS interleaved runs.
#   - one cached 100 MB file: curl, median of 5 downloads each.
#   - allocations per request of the whole apt-p2p server process under wrk.
# Needs wrk, nginx (nginx-light is enough) and curl: apt-get install wrk nginx-light curl.
# Usage: bash bench/serve.sh [RUNS] [SECONDS] [CONNECTION COUNTS]
#   (64 connections saturate the 2 CPUs: throughput; 8 connections: latency below saturation)
set -euo pipefail
RUNS=${1:-3}
SECS=${2:-10}
CONNS=${3:-64 8}
cd "$(dirname "$0")/.."
for t in wrk nginx curl; do command -v $t >/dev/null || { echo "serve.sh: $t missing (apt-get install wrk nginx-light curl)"; exit 1; }; done
source bench/aptbench/lib.sh # ab_wrk_lua

TMP=$(mktemp -d /tmp/servebench.XXXXXX)
chmod 755 "$TMP"
NGINX_PID= ; SB_PID=
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  [ -n "$SB_PID" ] && kill "$SB_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/files"
head -c $((100 << 20)) /dev/urandom > "$TMP/files/big.bin"
for i in $(seq -w 0 999); do head -c 51200 /dev/urandom > "$TMP/files/f$i"; done
chmod -R a+rX "$TMP/files"

NGX_PORT=$((20000 + RANDOM % 10000)); SB_PORT=$((NGX_PORT + 1))
cat > "$TMP/nginx.conf" <<NGX
worker_processes auto;
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 60;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $TMP/cb; proxy_temp_path $TMP/pt; fastcgi_temp_path $TMP/ft;
  uwsgi_temp_path $TMP/ut; scgi_temp_path $TMP/st;
  server { listen 127.0.0.1:$NGX_PORT; root $TMP/files; }
}
NGX
nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!

go build -o "$TMP/servebench" ./bench/servebench
"$TMP/servebench" -listen 127.0.0.1:$SB_PORT -dir "$TMP/files" > "$TMP/sb.log" &
SB_PID=$!
for _ in $(seq 100); do grep -q listening "$TMP/sb.log" 2>/dev/null && curl -sf -o /dev/null http://127.0.0.1:$NGX_PORT/f000 && break; sleep 0.1; done

python3 - "$TMP" <<'PY'
import hashlib, os, sys, urllib.parse
tmp = sys.argv[1]
with open(os.path.join(tmp, "peer50k"), "w") as out:
    for name in sorted(os.listdir(os.path.join(tmp, "files"))):
        if name == "big.bin":
            continue
        h = hashlib.sha1(open(os.path.join(tmp, "files", name), "rb").read()).digest()
        out.write("/~/" + urllib.parse.quote_plus(h) + "\n")
PY
ls "$TMP/files" | grep -v big | sed 's#^#/#' > "$TMP/names"
ab_wrk_lua "$TMP/apt.lua" "$TMP/names"
ab_wrk_lua "$TMP/peer.lua" "$TMP/peer50k"

# Sanity: both servers return identical bytes.
cmp <(curl -sf http://127.0.0.1:$NGX_PORT/f000) <(curl -sf http://127.0.0.1:$SB_PORT/f000)
cmp <(curl -sf http://127.0.0.1:$NGX_PORT/f000) <(curl -sf "http://127.0.0.1:$SB_PORT$(head -1 "$TMP/peer50k")")

# cputicks PID...: user+system CPU ticks (1/100 s) of the processes. The machine is shared, so
# throughput is noisy; CPU time per request is the steadier measure of the server's own cost.
cputicks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
serverpids() { if [ "$1" = nginx ]; then echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; else echo "$SB_PID"; fi; }
runwrk() { # name port script connections
  local pids c0 c1 rps tr p99 errs reqs segs
  pids=$(serverpids "$1")
  c0=$(cputicks $pids)
  nstat -n >/dev/null 2>&1 || true
  wrk -t2 -c"$4" -d${SECS}s --latency -s "$3" "http://127.0.0.1:$2" > "$TMP/wrk.out"
  c1=$(cputicks $pids)
  segs=$(nstat 2>/dev/null | awk '/TcpOutSegs/ {print $2}'); segs=${segs:-0}
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
  tr=$(awk '/^Transfer\/sec/ {print $2}' "$TMP/wrk.out")
  p99=$(awk '$1=="99%" {print $2}' "$TMP/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  errs=$(grep -c 'Non-2xx\|Socket errors' "$TMP/wrk.out" || true)
  echo "$1/c$4 $rps $tr $p99 $errs $(( (c1 - c0) * 10000000 / reqs )) $(( segs * 100 / reqs ))" | tee -a "$TMP/results"
}
echo "== 50 KB files: wrk -t2 -c{$CONNS} -d${SECS}s --latency, random file per request (name rps transfer p99 error-lines server-CPU-ns/request TCP-segments/request*100, both directions, whole host)"
for r in $(seq "$RUNS"); do
  for c in $CONNS; do
    runwrk nginx $NGX_PORT "$TMP/apt.lua" "$c"
    runwrk apt-p2p-apt $SB_PORT "$TMP/apt.lua" "$c"
    runwrk apt-p2p-peer $SB_PORT "$TMP/peer.lua" "$c"
  done
done

echo "== 100 MB file: curl -o /dev/null, bytes/s, 5 runs each (interleaved)"
BIGPEER=$(python3 -c "import hashlib,urllib.parse,sys;print('/~/'+urllib.parse.quote_plus(hashlib.sha1(open(sys.argv[1],'rb').read()).digest()))" "$TMP/files/big.bin")
for r in 1 2 3 4 5; do
  for s in "nginx http://127.0.0.1:$NGX_PORT/big.bin" "apt-p2p-apt http://127.0.0.1:$SB_PORT/big.bin" "apt-p2p-peer http://127.0.0.1:$SB_PORT$BIGPEER"; do
    set -- $s
    echo "big-$1 $(curl -sf -o /dev/null -w '%{speed_download}' "$2")" | tee -a "$TMP/results"
  done
done

kill -INT "$SB_PID"; wait "$SB_PID" 2>/dev/null || true; SB_PID=
echo "== apt-p2p server process: $(grep allocs "$TMP/sb.log")"

python3 - "$TMP/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
conns = sorted({r[0].split("/c")[1] for r in rows if "/c" in r[0]}, key=int, reverse=True)
def num(s):
    m = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "ms": 1e-3, "us": 1e-6, "s": 1}
    for k, v in m.items():
        if s.endswith(k):
            return float(s[:-len(k)]) * v
    return float(s)
def med(name, col):
    return statistics.median(num(r[col]) for r in rows if r[0] == name)
print("\n== medians")
for c in conns:
    print(f"50 KB files, {c} connections   req/s    transfer       p99   server CPU/request  TCP segments/request")
    for n in ["nginx", "apt-p2p-apt", "apt-p2p-peer"]:
        k = f"{n}/c{c}"
        print(f"{k:22s} {med(k,1):10.0f} {med(k,2)/1e6:9.1f} MB/s {med(k,3)*1e3:8.2f} ms {med(k,5)/1e3:8.1f} us {med(k,6)/100:8.2f}")
    for n in ["apt-p2p-apt", "apt-p2p-peer"]:
        k, g = f"{n}/c{c}", f"nginx/c{c}"
        print(f"ratio {k}/nginx: req/s {med(k,1)/med(g,1):.2f}, p99 {med(k,3)/med(g,3):.2f}, CPU/request {med(k,5)/med(g,5):.2f}")
print("100 MB file      MB/s")
for n in ["nginx", "apt-p2p-apt", "apt-p2p-peer"]:
    print(f"{n:14s} {med('big-'+n,1)/1e6:8.0f}")
for n in ["apt-p2p-apt", "apt-p2p-peer"]:
    print(f"ratio {n}/nginx: {med('big-'+n,1)/med('big-nginx',1):.2f}")
PY
