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
