#!/usr/bin/env bash
# Benchmark of issue 5: `caplens import` of a generated native JSON Lines file into SQLite and
# PostgreSQL; prints MB/s and peak RSS of the importing process.
#   tests/bench/ingest/run.sh [PLAIN_BYTES] [TRACES_BYTES]     (defaults: 1e9 and 2.5e8)
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} (cargo build --release -p caplens-server).
# PostgreSQL: ${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}, in a fresh schema
# (dropped afterwards); set BENCH_POSTGRES_URL= (empty) to skip it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
plain_bytes="${1:-1e9}"
traces_bytes="${2:-2.5e8}"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
pg_url="${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-ingest-bench.XXXXXX")"
schema="caplens_bench_$$"
cleanup() {
  rm -rf "$work"
  if [ -n "$pg_url" ]; then psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

python3 "$here/generate.py" plain "$work/plain.jsonl" "$plain_bytes"
python3 "$here/generate.py" traces "$work/traces.jsonl" "$traces_bytes"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # label file database-url
  local label="$1" file="$2" url="$3" data="$work/data-$RANDOM"
  cat "$file" > /dev/null  # warm the page cache: measure import, not the disk
  local t
  t=$(DATABASE_URL="$url" CAPLENS_LOG=warn python3 "$here/../passk/time_cmd.py" 1 "$work/out.txt" \
      "$caplens" --data-dir "$data" import "$file" --experiment "bench-$RANDOM")
  grep -q "completed" "$work/out.txt" || { cat "$work/out.txt"; exit 1; }
  python3 - "$label" "$(stat -c %s "$file")" "$t" "$(head -1 "$work/out.txt")" <<'PY'
import json, sys
label, size, t, line = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
rows = line.split(" rows read")[0].split()[-1]
print(f"{label:<34} {size/1e6:8.1f} MB  {int(rows):>9} rows  {t['wall']:7.2f} s  "
      f"{size/1e6/t['wall']:7.1f} MB/s  {int(rows)/t['wall']:9.0f} rows/s  peak RSS {t['max_rss_mb']:6.1f} MB")
PY
  rm -rf "$data"
}

run "native, no traces -> SQLite" "$work/plain.jsonl" ""
run "native, top-20 logprobs -> SQLite" "$work/traces.jsonl" ""
if [ -n "$pg_url" ]; then
  psql "$pg_url" -qc "CREATE SCHEMA $schema" >/dev/null
  sep='?'; case "$pg_url" in *\?*) sep='&';; esac
  url="${pg_url}${sep}options=-c%20search_path%3D${schema}"
  run "native, no traces -> PostgreSQL" "$work/plain.jsonl" "$url"
  run "native, top-20 logprobs -> PostgreSQL" "$work/traces.jsonl" "$url"
fi
