#!/usr/bin/env bash
# bench/proxy.sh — the proxy engine's throughput against nginx (B1 and B3 in the
# performance notes), isolated from the product: bench/gantryproxy serves one
# static service with the proxy package alone (no gateway layer, no router,
# no control plane). `make bench-proxy-core` runs it; `make bench-proxy`
# runs bench/runtime.sh, which measures `gantry runtime` itself.
#
# Upstream: nginx `return 200` with a 64-byte body, pinned to CPU 0.
# Targets, each pinned alone to CPU 1 (so Go runs with GOMAXPROCS=1):
#   nginx          — proxy_pass with upstream keepalive, 1 worker (the reference)
#   gantry         — the runtime's proxy engine, one service, its own HTTP/1.1
#                    server loop (Proxy.Serve)
#   gantry-nethttp — the same behind net/http's server
#   nginx-plugins  — nginx + `map` of 1,000 API keys (401 without one) +
#                    per-key `limit_req` with a rate never reached
#   gantry-plugins — gantry + key-auth (1,000 consumers, header apikey) +
#                    rate-limiting (local policy, limit never hit)
# Every target gets the same request header `apikey: key-7`.
# Load: wrk on CPU 0, `wrk -t1 -c50 -d10s --latency`, after a 3 s warm-up,
# RUNS runs per target, medians reported with min-max RPS. CPU µs/request is
# the target's utime+stime delta (/proc/<pid>/stat) divided by the requests
# wrk completed; RSS is the peak (VmHWM). The plugin variants are also
# reported against their own reference (vs_ref: gantry-plugins over
# nginx-plugins). Loopback only; every step bounded by `timeout`. Results go
# to bench/results/ (git-ignored).
#
# Usage: bench/proxy.sh   (env: RUNS=3 DURATION=10 WARMUP=3 CONNS=50
#                          TARGETS="nginx gantry gantry-nethttp nginx-plugins gantry-plugins")
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-50}
TARGETS=${TARGETS:-"nginx gantry gantry-nethttp nginx-plugins gantry-plugins"}
CONSUMERS=${CONSUMERS:-1000}
APIKEY=${APIKEY:-key-7}
UP_PORT=18080
declare -A PORT=([direct]=18080 [nginx]=18081 [gantry]=18082 [nginx-plugins]=18083 [gantry-plugins]=18084 [gantry-nethttp]=18085)
declare -A REF=([nginx]=nginx [gantry]=nginx [gantry-nethttp]=nginx [nginx-plugins]=nginx-plugins [gantry-plugins]=nginx-plugins [direct]=nginx)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/gantry-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
	echo "installing nginx and wrk from Debian packages" >&2
	timeout 300 apt-get update -qq
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq nginx-light wrk >/dev/null
fi
need taskset || { echo "taskset (util-linux) is required" >&2; exit 1; }
NGINX=$(command -v nginx)
TICK=$(getconf CLK_TCK)

# nginx configurations live in the work dir, never the system service's.
mkdir -p "$WORK/up" "$WORK/px"
BODY=$(printf '%064d' 0 | tr 0 x)
cat >"$WORK/up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/up; proxy_temp_path $WORK/up; fastcgi_temp_path $WORK/up;
	uwsgi_temp_path $WORK/up; scgi_temp_path $WORK/up;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$UP_PORT;
		location / { default_type text/plain; return 200 "$BODY"; }
	}
}
CONF
cat >"$WORK/px/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/px/nginx.pid;
error_log $WORK/px/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/px; proxy_temp_path $WORK/px; fastcgi_temp_path $WORK/px;
	uwsgi_temp_path $WORK/px; scgi_temp_path $WORK/px;
	keepalive_requests 1000000;
	upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; keepalive_requests 1000000; }
	server {
		listen 127.0.0.1:${PORT[nginx]};
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
CONF

# The plugin equivalent: a key map (the key-auth lookup) and a per-key
# request-rate zone whose rate is never reached (the local rate limit).
{
	echo "map \$http_apikey \$consumer {"
	echo "	default \"\";"
	for i in $(seq 0 $((CONSUMERS - 1))); do echo "	key-$i c$i;"; done
	echo "}"
} >"$WORK/px/keys.conf"
mkdir -p "$WORK/pxp"
cat >"$WORK/pxp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/pxp/nginx.pid;
error_log $WORK/pxp/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/pxp; proxy_temp_path $WORK/pxp; fastcgi_temp_path $WORK/pxp;
	uwsgi_temp_path $WORK/pxp; scgi_temp_path $WORK/pxp;
	keepalive_requests 1000000;
	map_hash_bucket_size 128;
	include $WORK/px/keys.conf;
	limit_req_zone \$consumer zone=per_consumer:10m rate=1000000r/s;
	upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; keepalive_requests 1000000; }
	server {
		listen 127.0.0.1:${PORT[nginx-plugins]};
		location / {
			if (\$consumer = "") { return 401 '{"message":"No API key found in request"}'; }
			limit_req zone=per_consumer burst=1000000 nodelay;
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
CONF

echo "building bench/gantryproxy" >&2
(cd "$ROOT" && timeout 300 go build -o "$WORK/gantryproxy" ./bench/gantryproxy)

wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "port $1 did not open" >&2
	return 1
}

# Upstream on CPU 0 (shared with wrk, as in the measured baseline).
taskset -c 0 "$NGINX" -p "$WORK/up" -c "$WORK/up/nginx.conf" 2>/dev/null &
PIDS+=($!)
wait_port $UP_PORT

declare -A TPID
start_target() {
	case $1 in
	direct) TPID[direct]="" ;;
	nginx)
		taskset -c 1 "$NGINX" -p "$WORK/px" -c "$WORK/px/nginx.conf" 2>/dev/null &
		PIDS+=($!)
		TPID[nginx]=$!
		;;
	nginx-plugins)
		taskset -c 1 "$NGINX" -p "$WORK/pxp" -c "$WORK/pxp/nginx.conf" 2>/dev/null &
		PIDS+=($!)
		TPID[$1]=$!
		;;
	gantry | gantry-nethttp | gantry-plugins)
		local args=(-listen "127.0.0.1:${PORT[$1]}" -upstream "127.0.0.1:$UP_PORT")
		[ "$1" = gantry-nethttp ] && args+=(-server net-http)
		[ "$1" = gantry-plugins ] && args+=(-plugins -consumers "$CONSUMERS")
		taskset -c 1 "$WORK/gantryproxy" "${args[@]}" &
		PIDS+=($!)
		TPID[$1]=$!
		;;
	*) echo "unknown target $1" >&2; exit 1 ;;
	esac
	wait_port "${PORT[$1]}"
}

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$RESULTS/proxy-$STAMP.tsv
echo -e "target\trun\trps\tp50_us\tp99_us\trequests\tcpu_us_per_req\trss_kb" >"$RAW"
LOAD=$(cat /proc/loadavg)

for t in $TARGETS; do
	start_target "$t"
	url=http://127.0.0.1:${PORT[$t]}/
	measure "$t" "$url"
	if [ -n "${TPID[$t]}" ]; then kill "${TPID[$t]}" 2>/dev/null || true; wait "${TPID[$t]}" 2>/dev/null || true; fi
done

SUMMARY=$RESULTS/proxy-$STAMP.txt
summarize "proxy benchmark $STAMP  (runs=$RUNS duration=${DURATION}s conns=$CONNS consumers=$CONSUMERS)" | tee "$SUMMARY"
echo "raw runs: $RAW" >&2
