# Shared shell functions of bench/proxy.sh, bench/cold.sh and bench/memory.sh: start the servers
# under comparison on loopback in a private temporary directory, read their CPU time and memory.
# The caller sets TMP (a fresh directory) and sources this file; ab_cleanup stops everything
# started here (by PID) and removes TMP.
#
# Servers (each function sets <NAME>_PID and <NAME>_PORT):
#   origin   nginx (sendfile) serving $1 as the test mirror; also the reference for the serving limit
#   aptp2p   bin/apt-p2p run --embedded alone (no bootstrap node, so no peers), cache in $1
#   acng     apt-cacher-ng in the foreground with a config dir, cache and logs under TMP
#   approx   approx (an inetd service) behind systemd-socket-activate --inetd -a: one approx
#            process per connection, as under inetd
# URL prefixes: $ORIGIN_URL/debian/..., $APTP2P_URL/debian/..., $ACNG_URL/debian/..., $APPROX_URL/debian/...

AB_PIDS=()

ab_cleanup() {
	local p
	for p in "${AB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in "${AB_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n ${AB_DEVLOG:-} ]] && rm -f /dev/log
	[[ -n ${TMP:-} && -d $TMP ]] && rm -rf "$TMP"
}

# ab_port: a free TCP port on 127.0.0.1 (random in 20000-31999, checked with ss).
ab_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000)) # apt-cacher-ng cannot bind ports above 32767
		ss -Hltn "sport = :$p" | grep -q . || ss -Hlun "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# ab_wait URL: until URL answers (any HTTP status), at most 20 s.
ab_wait() {
	local i
	for i in $(seq 200); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "server at $1 did not start" >&2
	return 1
}

# ab_build: builds bench/aptbench and the daemon into TMP (AB and APTP2P_BIN). The daemon comes
# from the tree (or $APTP2P_BIN when set); if other work in progress does not compile, bin/apt-p2p (make build) is used.
ab_build() {
	go build -o "$TMP/aptbench" ./bench/aptbench
	AB=$TMP/aptbench
	if [[ -n ${APTP2P_BIN:-} ]]; then
		echo "using APTP2P_BIN=$APTP2P_BIN" >&2
	elif go build -trimpath -o "$TMP/apt-p2p" ./cmd/apt-p2p 2>"$TMP/build.err"; then
		APTP2P_BIN=$TMP/apt-p2p
	elif [[ -x bin/apt-p2p ]]; then
		echo "note: the tree does not build ($(head -1 "$TMP/build.err")); using bin/apt-p2p" >&2
		APTP2P_BIN=bin/apt-p2p
	else
		cat "$TMP/build.err" >&2
		return 1
	fi
}

ab_origin() { # ROOTDIR
	ORIGIN_PORT=$(ab_port)
	mkdir -p "$TMP/nginx"
	cat >"$TMP/nginx/nginx.conf" <<NGX
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 60;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $TMP/nginx/cb; proxy_temp_path $TMP/nginx/pt; fastcgi_temp_path $TMP/nginx/ft;
  uwsgi_temp_path $TMP/nginx/ut; scgi_temp_path $TMP/nginx/st;
  server { listen 127.0.0.1:$ORIGIN_PORT; root $1; }
}
NGX
	nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
	ORIGIN_PID=$!
	AB_PIDS+=("$ORIGIN_PID")
	ORIGIN_URL=http://127.0.0.1:$ORIGIN_PORT
	ab_wait "$ORIGIN_URL/"
}

ab_wrk_lua() { # OUT LIST [PREFIX]: a wrk script asking, per request, for one path of LIST (a path
	# per line, PREFIX before each), spread over the list by a fixed stride
	cat >"$1" <<LUA
local paths = {}
for l in io.lines("$2") do paths[#paths + 1] = "${3:-}" .. l end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i * 7919) % #paths + 1])
end
LUA
}

ab_aptp2p() { # CACHEDIR [extra args...]
	local cache=$1
	shift
	APTP2P_PORT=$(ab_port)
	mkdir -p "$cache"
	"$APTP2P_BIN" run --embedded --bind 127.0.0.1 --port "$APTP2P_PORT" --cache-dir "$cache" \
		--set LOG_LEVEL=warn "$@" >>"$TMP/apt-p2p.log" 2>&1 &
	APTP2P_PID=$!
	AB_PIDS+=("$APTP2P_PID")
	APTP2P_URL=http://127.0.0.1:$APTP2P_PORT/127.0.0.1:$ORIGIN_PORT
	ab_wait "http://127.0.0.1:$APTP2P_PORT/stats.json"
}

ab_acng() { # CACHEDIR
	ACNG_PORT=$(ab_port)
	mkdir -p "$TMP/acng/conf" "$TMP/acng/log" "$1"
	# No Remap-* lines: requests name the origin host:port themselves (URL-prefix form).
	cat >"$TMP/acng/conf/acng.conf" <<ACNG
CacheDir: $1
LogDir: $TMP/acng/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $ACNG_PORT
BindAddress: 127.0.0.1
ForeGround: 1
ExThreshold: 4
# The origin listens on a high port; by default only port 80 may be named in a URL.
AllowUserPorts: 0
ACNG
	apt-cacher-ng -c "$TMP/acng/conf" >"$TMP/acng/stdout" 2>&1 &
	ACNG_PID=$!
	AB_PIDS+=("$ACNG_PID")
	ACNG_URL=http://127.0.0.1:$ACNG_PORT/127.0.0.1:$ORIGIN_PORT
	ab_wait "http://127.0.0.1:$ACNG_PORT/acng-report.html"
}

ab_approx() { # CACHEDIR
	APPROX_PORT=$(ab_port)
	mkdir -p "$1"
	# approx logs to syslog and exits (status 1, no message anywhere) when /dev/log is missing,
	# as in containers: provide one for the run and remove it afterwards.
	if [[ ! -S /dev/log ]]; then
		"$AB" syslog -socket /dev/log -out "$TMP/syslog" &
		AB_PIDS+=($!)
		AB_DEVLOG=1
		sleep 0.2
	fi
	chown approx:approx "$1" 2>/dev/null || true
	cat >"$TMP/approx.conf" <<APX
debian http://127.0.0.1:$ORIGIN_PORT/debian
\$cache $1
\$interval 600
\$syslog daemon
APX
	# approx refuses to run as any user but approx (inetd starts it as that user).
	systemd-socket-activate --inetd -a -l "127.0.0.1:$APPROX_PORT" \
		setpriv --reuid=approx --regid=approx --clear-groups /usr/sbin/approx -c "$TMP/approx.conf" \
		>"$TMP/approx.log" 2>&1 &
	APPROX_PID=$!
	AB_PIDS+=("$APPROX_PID")
	APPROX_URL=http://127.0.0.1:$APPROX_PORT
	ab_wait "$APPROX_URL/"
}

# ab_pids NAME: the processes whose CPU and memory count for server NAME.
ab_pids() {
	case $1 in
	nginx | origin) echo "$ORIGIN_PID $(pgrep -P "$ORIGIN_PID" | tr '\n' ' ')" ;;
	apt-p2p) echo "$APTP2P_PID" ;;
	apt-cacher-ng) echo "$ACNG_PID" ;;
	approx) echo "$APPROX_PID $(pgrep -P "$APPROX_PID" | tr '\n' ' ')" ;;
	esac
}

# ab_cputicks PID...: user+system CPU ticks (1/100 s) of the processes plus their reaped
# children (approx runs one child per connection; systemd-socket-activate reaps them).
ab_cputicks() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo $t
}

# ab_kb FIELD PID...: the sum of a /proc/PID/status field (VmRSS, VmHWM) in KiB.
ab_kb() {
	local f=$1 t=0 p v
	shift
	for p in "$@"; do
		v=$(awk -v f="$f:" '$1==f {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo $t
}

# ab_pss PID...: the sum of the processes' proportional set sizes (shared pages split between the
# processes that map them) in KiB: the fair total for multi-process servers (nginx, approx).
ab_pss() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '$1=="Pss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo $t
}
