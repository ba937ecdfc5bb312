#!/usr/bin/env bash
# bench/runtime.sh — the product's proxy throughput against nginx (B1 and B3
# in the performance notes): `gantry runtime`, configured by `gantry serve`
# through the Admin API, as a user would run them.
#
# Upstream: nginx `return 200` with a 64-byte body, pinned to CPU 0.
# Control plane: `gantry serve` on SQLite in a temp dir, GANTRY_ADMIN_TOKEN,
# pinned to CPU 0 (idle during the load). It holds two runtime groups:
#   bench          — one service (the upstream) and one route `/`
#   bench-plugins  — the same, plus key-auth (header apikey) with 1,000
#                    consumers and one key each, and rate-limiting (local
#                    policy, 1,000,000 per second and 1,000,000,000 per
#                    minute: never hit, even by one consumer over every run)
# Targets, each pinned alone to CPU 1 (so Go runs with GOMAXPROCS=1):
#   direct         — wrk straight to the upstream (both on CPU 0)
#   nginx          — proxy_pass with upstream keepalive, 1 worker (the reference)
#   gantry         — `gantry runtime` of group bench, with a client
#                    certificate the control plane generated
#   nginx-plugins  — nginx + `map` of 1,000 API keys (401 without one) +
#                    per-key `limit_req` with a rate never reached
#   gantry-plugins — `gantry runtime` of group bench-plugins
#   gantry-core    — (optional) bench/gantryproxy: the proxy engine alone
#                    behind its server loop, no gateway layer, no control
#                    plane; isolates the proxy core from the product
# A runtime gets load only once its /status configuration_hash equals its
# group's expected-config-hash. Every target gets `apikey: key-7`.
# Load: wrk on CPU 0, `wrk -t1 -c50 -d10s --latency`, after a 3 s warm-up,
# RUNS runs per target, medians reported with min-max RPS. CPU µs/request is
# the target's utime+stime delta (/proc/<pid>/stat) over the requests wrk
# completed; RSS is the peak (VmHWM). Ratios are to nginx, and for the plugin
# variants also to nginx-plugins (vs_ref), all measured in this run.
# Loopback only; every step bounded by `timeout`. Results go to
# bench/results/ (git-ignored).
#
# Usage: bench/runtime.sh   (env: RUNS=3 DURATION=10 WARMUP=3 CONNS=50
#                            TARGETS="direct nginx gantry nginx-plugins gantry-plugins"
#                            RUNTIME_ENV="GOGC=200 GODEBUG=gctrace=1": extra
#                            environment of the runtimes, for experiments;
#                            PROFILE=gantry: one more wrk run of that target
#                            under perf, its top functions saved beside the
#                            results)
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-50}
TARGETS=${TARGETS:-"direct nginx gantry nginx-plugins gantry-plugins"}
CONSUMERS=${CONSUMERS:-1000}
APIKEY=${APIKEY:-key-7}
UP_PORT=18080
CP_PORT=18090
CLUSTER_PORT=18091
STATUS_PORT=18092
declare -A PORT=([direct]=18080 [nginx]=18081 [gantry]=18082 [nginx-plugins]=18083 [gantry-plugins]=18084 [gantry-core]=18085)
declare -A REF=([nginx]=nginx [gantry]=nginx [gantry-core]=nginx [nginx-plugins]=nginx-plugins [gantry-plugins]=nginx-plugins [direct]=nginx)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
WORK=$(mktemp -d /tmp/gantry-runtime-bench.XXXXXX)
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
for tool in taskset curl jq; do
	need $tool || { echo "$tool is required" >&2; exit 1; }
done
NGINX=$(command -v nginx)
TICK=$(getconf CLK_TCK)

# nginx configurations live in the work dir, never the system service's.
mkdir -p "$WORK/up" "$WORK/px" "$WORK/pxp"
BODY=$(printf '%064d' 0 | tr 0 x)
nginx_common() { # $1: dir
	cat <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
CONF
}
nginx_http_common() { # $1: dir
	cat <<CONF
	access_log off;
	client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
	uwsgi_temp_path $1; scgi_temp_path $1;
	keepalive_requests 1000000;
CONF
}
{
	nginx_common "$WORK/up"
	echo "http {"
	nginx_http_common "$WORK/up"
	cat <<CONF
	server {
		listen 127.0.0.1:$UP_PORT;
		location / { default_type text/plain; return 200 "$BODY"; }
	}
}
CONF
} >"$WORK/up/nginx.conf"
{
	nginx_common "$WORK/px"
	echo "http {"
	nginx_http_common "$WORK/px"
	cat <<CONF
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
} >"$WORK/px/nginx.conf"
# The plugin equivalent: a key map (the key-auth lookup) and a per-key
# request-rate zone whose rate is never reached (the local rate limit).
{
	echo "map \$http_apikey \$consumer {"
	echo "	default \"\";"
	for i in $(seq 0 $((CONSUMERS - 1))); do echo "	key-$i c$i;"; done
	echo "}"
} >"$WORK/pxp/keys.conf"
{
	nginx_common "$WORK/pxp"
	echo "http {"
	nginx_http_common "$WORK/pxp"
	cat <<CONF
	map_hash_bucket_size 128;
	include $WORK/pxp/keys.conf;
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
} >"$WORK/pxp/nginx.conf"

echo "building gantry" >&2
(cd "$ROOT" && timeout 300 go build -o "$WORK/gantry" ./cmd/gantry)
if [[ " $TARGETS " == *" gantry-core "* ]]; then
	(cd "$ROOT" && timeout 300 go build -o "$WORK/gantryproxy" ./bench/gantryproxy)
fi

wait_port() {
	for _ in $(seq 1 200); do
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

# The control plane, on CPU 0 too: it only pushes configuration, before the
# load starts.
TOKEN=gpat_bench$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
API=http://127.0.0.1:$CP_PORT
GANTRY_ADMIN_TOKEN=$TOKEN GANTRY_LOG_LEVEL=warn taskset -c 0 "$WORK/gantry" serve --listen 127.0.0.1:$CP_PORT \
	--data-dir "$WORK/cp" --cluster-listen 127.0.0.1:$CLUSTER_PORT --cluster-endpoint https://127.0.0.1:$CLUSTER_PORT \
	>"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
	curl -fsS -o /dev/null "$API/readyz" 2>/dev/null && break
	sleep 0.05
done
api() { # method path [json body] -> response body; fails on non-2xx
	local args=(-fsS --max-time 30 -X "$1" -H "Authorization: Bearer $TOKEN")
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
	curl "${args[@]}" "$API$2" || { echo "API $1 $2 failed" >&2; return 1; }
}

# curl_entry url json: one POST in a curl config file (options hold up to
# the next `next`).
curl_entry() {
	echo "url = \"$1\""
	echo 'request = "POST"'
	echo "data = \"${2//\"/\\\"}\""
	echo 'output = "/dev/null"'
	echo 'write-out = "%{http_code}\n"'
	echo 'header = "Content-Type: application/json"'
	echo "header = \"Authorization: Bearer $TOKEN\""
}

# setup_group name [plugins]: a group with the service and route (and the
# plugins and consumers), and a client certificate for its runtime in
# $WORK/<name>/. Prints the group id.
setup_group() {
	local name=$1 gid ce
	gid=$(api POST /v2/runtime-groups "{\"name\":\"$name\"}" | jq -r .id)
	ce=/v2/runtime-groups/$gid/core-entities
	api POST "$ce/services" "{\"name\":\"upstream\",\"url\":\"http://127.0.0.1:$UP_PORT\"}" >/dev/null
	api POST "$ce/services/upstream/routes" '{"name":"all","paths":["/"]}' >/dev/null
	if [ "${2:-}" = plugins ]; then
		# 2,000 calls through one curl process on one keep-alive connection.
		local cfg=$WORK/$name-consumers.curl i
		: >"$cfg"
		{
			for i in $(seq 0 $((CONSUMERS - 1))); do
				curl_entry "$API$ce/consumers" "{\"username\":\"c$i\"}"
				echo next
				curl_entry "$API$ce/consumers/c$i/key-auth" "{\"key\":\"key-$i\"}"
				if [ "$i" -lt $((CONSUMERS - 1)) ]; then echo next; fi
			done
		} >"$cfg"
		timeout 300 curl -sS --max-time 300 -K "$cfg" >"$WORK/$name-codes.txt"
		if grep -qv '^201$' "$WORK/$name-codes.txt"; then
			echo "creating consumers failed: $(sort "$WORK/$name-codes.txt" | uniq -c | tr '\n' ' ')" >&2
			return 1
		fi
		api POST "$ce/routes/all/plugins" '{"name":"key-auth","config":{"key_names":["apikey"]}}' >/dev/null
		api POST "$ce/routes/all/plugins" '{"name":"rate-limiting","config":{"second":1000000,"minute":1000000000,"policy":"local","limit_by":"consumer"}}' >/dev/null
	fi
	mkdir -p "$WORK/$name"
	api POST "/v2/runtime-groups/$gid/dp-client-certificates/generate" '{"title":"bench"}' >"$WORK/$name/issued.json"
	jq -r .item.cert "$WORK/$name/issued.json" >"$WORK/$name/tls.crt"
	jq -r .key "$WORK/$name/issued.json" >"$WORK/$name/tls.key"
	jq -r .ca_cert "$WORK/$name/issued.json" >"$WORK/$name/ca.crt"
	echo "$gid"
}
declare -A GROUP
if [[ " $TARGETS " == *" gantry "* ]]; then GROUP[gantry]=$(setup_group bench); fi
if [[ " $TARGETS " == *" gantry-plugins "* ]]; then GROUP[gantry-plugins]=$(setup_group bench-plugins plugins); fi
echo "control plane configured" >&2

declare -A TPID
start_runtime() { # target group-dir-name
	local t=$1 dir=$WORK/$2 gid=${GROUP[$1]} want got
	# shellcheck disable=SC2086 # RUNTIME_ENV is a list of NAME=value words
	env GANTRY_LOG_LEVEL=warn ${RUNTIME_ENV:-} taskset -c 1 "$WORK/gantry" runtime --control-plane 127.0.0.1:$CLUSTER_PORT \
		--cert "$dir/tls.crt" --key "$dir/tls.key" --ca "$dir/ca.crt" --server-name localhost \
		--proxy-listen 127.0.0.1:${PORT[$t]} --proxy-tls-listen off --status-listen 127.0.0.1:$STATUS_PORT \
		--cache-dir "$dir/cache" >"$dir/runtime.log" 2>&1 &
	PIDS+=($!)
	TPID[$t]=$!
	want=$(api GET "/v2/runtime-groups/$gid/expected-config-hash" | jq -r .expected_hash)
	for _ in $(seq 1 600); do
		got=$(curl -fsS --max-time 2 "http://127.0.0.1:$STATUS_PORT/status" 2>/dev/null | jq -r .configuration_hash 2>/dev/null || true)
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	echo "runtime $t did not converge to $want (serves ${got:-nothing}); log:" >&2
	tail -20 "$dir/runtime.log" >&2
	return 1
}
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
	gantry) start_runtime gantry bench ;;
	gantry-plugins) start_runtime gantry-plugins bench-plugins ;;
	gantry-core)
		taskset -c 1 "$WORK/gantryproxy" -listen "127.0.0.1:${PORT[$1]}" -upstream "127.0.0.1:$UP_PORT" &
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
RAW=$RESULTS/runtime-$STAMP.tsv
echo -e "target\trun\trps\tp50_us\tp99_us\trequests\tcpu_us_per_req\trss_kb" >"$RAW"
LOAD=$(cat /proc/loadavg)

for t in $TARGETS; do
	start_target "$t"
	url=http://127.0.0.1:${PORT[$t]}/
	# One checked request first: a target that answers anything but 200 is
	# not measured.
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "apikey: $APIKEY" "$url")
	[ "$code" = 200 ] || { echo "$t answers $code, not 200" >&2; exit 1; }
	if [[ $t == *-plugins ]]; then
		# The plugins must really run: no key is refused, and the runtime's
		# rate limiter reports its limit.
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")
		[ "$code" = 401 ] || { echo "$t answers $code without a key, not 401" >&2; exit 1; }
		if [ "$t" = gantry-plugins ] && ! curl -s -D - -o /dev/null --max-time 5 -H "apikey: $APIKEY" "$url" | grep -qi '^ratelimit-limit:'; then
			echo "$t sends no RateLimit-Limit header" >&2
			exit 1
		fi
	fi
	measure "$t" "$url"
	if [ "${PROFILE:-}" = "$t" ]; then
		# Where the target's CPU goes: perf samples it under one more wrk run
		# and the top functions (self time) go beside the results.
		need perf || { echo "PROFILE needs perf (Debian's linux-perf)" >&2; exit 1; }
		perf record -q -F 999 -g -p "${TPID[$t]}" -o "$WORK/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
		ppid=$!
		timeout $((DURATION + 15)) taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "apikey: $APIKEY" "$url" >/dev/null
		wait $ppid || true
		PROF=$RESULTS/runtime-$(date -u +%Y%m%dT%H%M%SZ)-$t.perf.txt
		{
			echo "== all samples (kernel and gantry), self time"
			perf report -i "$WORK/perf.data" --no-children --stdio --sort symbol --percent-limit 0.5 -g none 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -40
			echo "== gantry's own code and the Go runtime (percent of all samples)"
			perf report -i "$WORK/perf.data" --no-children --stdio --sort symbol --dsos gantry --percent-limit 0.3 -g none 2>/dev/null |
				grep -v '^#' | grep -v '^$' | head -30
		} >"$PROF"
		echo "CPU profile of $t (self time, top functions): $PROF" >&2
		head -13 "$PROF" >&2
	fi
	if [ -n "${TPID[$t]}" ]; then kill "${TPID[$t]}" 2>/dev/null || true; wait "${TPID[$t]}" 2>/dev/null || true; fi
done

SUMMARY=$RESULTS/runtime-$STAMP.txt
summarize "runtime benchmark $STAMP  (runs=$RUNS duration=${DURATION}s conns=$CONNS consumers=$CONSUMERS)" \
	"gantry = gantry runtime configured by gantry serve through the Admin API; gantry-core = bench/gantryproxy" | tee "$SUMMARY"
echo "raw runs: $RAW" >&2
