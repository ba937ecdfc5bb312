#!/usr/bin/env bash
# Push latency and control plane memory per connected instance (the runtime-instances issue):
#   - push latency: a configuration write accepted by the control plane → every connected Kong
#     data-plane peer reports the new hash in its ping, for 1, 10 and 100 peers (30 writes each;
#     median and p90);
#   - push latency across processes: two control plane processes on one PostgreSQL database, a
#     write committed through one → all 100 peers connected to the other report the new hash
#     (500 writes; median and p99; the change travels by LISTEN/NOTIFY, the poll is off);
#   - memory: heap bytes and goroutines per connected instance with 1,000 simulated instances, in a
#     child process so only the control plane's heap is counted.
# All run as Go benchmarks of internal/cp/cluster over real mTLS on loopback (SQLite, and
# PostgreSQL on 127.0.0.1:5432 or GANTRY_TEST_POSTGRES_URL for the cross-process one). The 100
# simulated data planes share the machine's cores with the control planes.
# Usage: bench/push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test ./internal/cp/cluster/ -run '^$' -bench 'PushLatency' -benchtime=30x | grep -E '^Benchmark'
go test ./internal/cp/cluster/ -run '^$' -bench 'PushAcrossProcesses' -benchtime=500x | grep -E '^Benchmark'
go test ./internal/cp/cluster/ -run '^$' -bench 'MemoryPerInstance' -benchtime=1x | grep -E '^Benchmark'
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
