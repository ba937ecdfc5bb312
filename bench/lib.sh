# Helpers shared by the proxy benchmarks (proxy.sh, runtime.sh): CPU time and peak memory of a
# target's processes, and wrk's figures. Sourced, not run.

# pids of a target: the process and its children (nginx's worker).
tree() { [ -n "$1" ] && { echo "$1"; pgrep -P "$1" || true; }; }
cpu_ticks() {
	local sum=0 p
	for p in $(tree "$1"); do
		[ -r /proc/$p/stat ] || continue
		# Fields 14 and 15 are utime and stime, counted after the "(comm)".
		sum=$((sum + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12 + $13}')))
	done
	echo $sum
}
peak_rss_kb() {
	local max=0 p v
	for p in $(tree "$1"); do
		v=$(awk '/VmHWM/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
		[ "${v:-0}" -gt "$max" ] && max=$v
	done
	echo $max
}
to_us() { # wrk latency "1.23ms" -> microseconds
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}
median() { sort -n | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }

# measure warms TARGET up at URL, then runs wrk RUNS times, appending one row per run to $RAW
# (target, run, rps, p50_us, p99_us, requests, cpu_us_per_req, rss_kb). It uses CONNS, WARMUP,
# DURATION, APIKEY, TICK and the target's pid in TPID. A run with non-2xx answers measures something
# else (a 429 costs less than a proxied 200), so it stops the benchmark rather than report it.
measure() {
	local t=$1 url=$2 run out before after rps reqs p50 p99 cpu rss
	timeout $((WARMUP + 10)) taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H "apikey: $APIKEY" "$url" >/dev/null
	for run in $(seq 1 "$RUNS"); do
		before=$(cpu_ticks "${TPID[$t]}")
		out=$(timeout $((DURATION + 15)) taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "apikey: $APIKEY" "$url")
		after=$(cpu_ticks "${TPID[$t]}")
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
		reqs=$(awk '/requests in/ {print $1}' <<<"$out")
		p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
		p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
		if grep -q "Non-2xx" <<<"$out"; then
			echo "error: $t run $run had non-2xx answers:" >&2
			grep "Non-2xx" <<<"$out" >&2
			exit 1
		fi
		if grep -q "Socket errors" <<<"$out"; then
			echo "warning: $t run $run had socket errors:" >&2
			grep "Socket errors" <<<"$out" >&2
		fi
		cpu="-"
		if [ -n "${TPID[$t]}" ] && [ "${reqs:-0}" -gt 0 ]; then
			cpu=$(awk -v d=$((after - before)) -v tk="$TICK" -v n="$reqs" 'BEGIN { printf "%.1f", d / tk * 1e6 / n }')
		fi
		rss=$( [ -n "${TPID[$t]}" ] && peak_rss_kb "${TPID[$t]}" || echo 0)
		echo -e "$t\t$run\t$rps\t$p50\t$p99\t$reqs\t$cpu\t$rss" >>"$RAW"
		echo "$t run $run: $rps rps, p50 ${p50}µs, p99 ${p99}µs, ${cpu} µs/req CPU" >&2
	done
}

# summarize prints, after its header lines (the arguments), the load averages and one row per
# target of $TARGETS from $RAW: medians, min-max RPS, the ratio to nginx and to the target's own
# reference (REF[target], nginx by default), and p99 over the reference's, all from this run.
summarize() {
	local line t rps mn mx p50 p99 cpu rss ref nginx_rps ref_rps ref_p99
	for line in "$@"; do echo "$line"; done
	echo "load average before: $LOAD"
	echo "load average after:  $(cat /proc/loadavg)"
	printf "%-15s %20s %8s %8s %9s %7s %7s %11s %7s\n" target "rps median (min-max)" p50_us p99_us vs_nginx vs_ref p99/ref cpu_us/req rss_MB
	med() { awk -F'\t' -v t="$1" -v c="$2" '$1 == t {print $c}' "$RAW" | median; }
	ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
	for t in $TARGETS; do
		rps=$(med "$t" 3)
		mn=$(awk -F'\t' -v t="$t" '$1 == t {print $3}' "$RAW" | sort -n | head -1)
		mx=$(awk -F'\t' -v t="$t" '$1 == t {print $3}' "$RAW" | sort -n | tail -1)
		p50=$(med "$t" 4); p99=$(med "$t" 5); cpu=$(med "$t" 7); rss=$(med "$t" 8)
		ref=${REF[$t]:-nginx}
		nginx_rps=$(med nginx 3); ref_rps=$(med "$ref" 3); ref_p99=$(med "$ref" 5)
		printf "%-15s %8.0f (%.0f-%.0f) %8.0f %8.0f %9s %7s %7s %11s %7s\n" "$t" "$rps" "$mn" "$mx" "$p50" "$p99" \
			"$(ratio "$rps" "$nginx_rps")" "$(ratio "$rps" "$ref_rps")" "$(ratio "$p99" "$ref_p99")" "$cpu" \
			"$(awk -v k="$rss" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "-" }')"
	done
}
