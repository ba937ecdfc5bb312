#!/usr/bin/env bash
# Measures creating and listing 10,000 services, routes and consumers in one runtime group through
# the Kong Admin API, on SQLite and on PostgreSQL. Usage: bench/entities.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/gantry ./cmd/gantry
go build -o bin/bench-entities ./bench/entities
TOKEN=gpat_benchentitiestoken
PG_ADMIN=${GANTRY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS gantry_bench_entities WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

measure() { # label, extra serve flags...
  local label=$1; shift
  GANTRY_ADMIN_TOKEN=$TOKEN ./bin/gantry serve --listen 127.0.0.1:18089 "$@" >"$work/$label.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18089/readyz >/dev/null && break; sleep 0.1; done
  ./bin/bench-entities -api http://127.0.0.1:18089 -token $TOKEN -n "$N" -label "$label"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

measure sqlite --data-dir "$work/sqlite"
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS gantry_bench_entities WITH (FORCE)" >/dev/null
psql "$PG_ADMIN" -qc "CREATE DATABASE gantry_bench_entities" >/dev/null
measure postgres --database-url "${PG_ADMIN%/*}/gantry_bench_entities?sslmode=disable"
