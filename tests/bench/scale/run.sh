#!/usr/bin/env bash
# Issue 16: one PostgreSQL database with ten million rollouts. Generates MODELS x PROBLEMS x N
# graded rollouts with short responses (default 8 x 2000 x 640 = 10.24M; tests/bench/views/
# generate.py), imports them with `caplens import` into a fresh schema, and prints: the import's
# time and rate, the database size per rollout (all tables and indexes of the schema) and the
# response packs' size, then p50/p95 server time of the overview, pass@k, unsolvable and problem
# pages over 200 sequential warm requests each (tests/bench/views/latency.py).
#   tests/bench/scale/run.sh [MODELS] [PROBLEMS] [N]
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} and
# ${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}. Needs about 3 GB of disk.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
pg_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-scale-bench.XXXXXX")"
schema="caplens_scale_$$"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$work"
  psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
BENCH_RESPONSES=1 python3 "$here/../views/generate.py" "$work/scale.jsonl" "${1:-8}" "${2:-2000}" "${3:-640}"
psql "$pg_url" -qc "CREATE SCHEMA $schema" >/dev/null
sep='?'; case "$pg_url" in *\?*) sep='&';; esac
url="${pg_url}${sep}options=-c%20search_path%3D${schema}"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$work/scale.jsonl" > /dev/null
start=$(date +%s.%N)
DATABASE_URL="$url" CAPLENS_LOG=warn "$caplens" --data-dir "$work/data" import "$work/scale.jsonl" --experiment bench-scale >/dev/null
end=$(date +%s.%N)
rows=$(psql "$url" -tAc "SELECT COUNT(*) FROM rollouts")
python3 - "$start" "$end" "$rows" "$(stat -c %s "$work/scale.jsonl")" <<'PY'
import sys
start, end, rows, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = end - start
print(f"import: {rows} rollouts, {size/1e6:.0f} MB in {t:.1f} s = {size/1e6/t:.1f} MB/s, {rows/t:.0f} rollouts/s")
PY
psql "$url" -qc "VACUUM ANALYZE" >/dev/null
db_bytes=$(psql "$url" -tAc "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$schema' AND c.relkind = 'r'")
ro_bytes=$(psql "$url" -tAc "SELECT pg_total_relation_size('rollouts')")
packs=$(du -sb "$work/data/blobs" | cut -f1)
python3 -c "
import sys
db, ro, packs, rows = map(int, sys.argv[1:])
print(f'database: {db/1e6:.0f} MB in all ({db/rows:.0f} bytes per rollout), rollouts table with indexes {ro/1e6:.0f} MB ({ro/rows:.0f} bytes per rollout); response packs {packs/1e6:.0f} MB')
" "$db_bytes" "$ro_bytes" "$packs" "$rows"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="$url" CAPLENS_LOG=warn "$caplens" serve --data-dir "$work/data" --addr "127.0.0.1:$port" --no-demo >/dev/null 2>&1 &
server=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
problem=$(psql "$url" -tAc "SELECT MIN(id) FROM problems")
base="http://127.0.0.1:$port"
python3 "$here/../views/latency.py" "$base/experiments/bench-scale" "$base/experiments/bench-scale/passk" \
  "$base/experiments/bench-scale/unsolvable" "$base/problems/$problem?experiment=bench-scale"
