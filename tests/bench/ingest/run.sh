#!/usr/bin/env bash
# Ingest benchmark (issues 5 and 16): `caplens import` of generated native JSON Lines files into
# SQLite and PostgreSQL; prints MB/s, rows/s and the peak RSS of the importing process, then
# what bounds it: the file read from the page cache, the CPU stages of an import on one core
# (parse, grade, checks: server/benches/ingest_stages.rs), and a bare bulk insert of the same
# rows into a table with the same keys and indexes (bare_insert.py).
#   tests/bench/ingest/run.sh [PLAIN_BYTES] [TRACES_BYTES]     (defaults: 1e9 and 2.5e8; 0 skips)
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} (cargo build --release -p caplens-server).
# PostgreSQL: ${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}, in a fresh schema
# (dropped afterwards); set BENCH_POSTGRES_URL= (empty) to skip it. STAGES=0 skips the stage
# split, BARE=0 the bare inserts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
plain_bytes="${1:-1e9}"
traces_bytes="${2:-2.5e8}"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
pg_url="${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-ingest-bench.XXXXXX")"
cleanup() {
  rm -rf "$work"
  [ -n "$pg_url" ] || return 0
  # Every schema this run made (they are made in subshells: found by name, not remembered).
  for s in $(psql "$pg_url" -tAc "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'caplens_bench_$$\_%'" 2>/dev/null); do
    psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
# A fresh schema per run, so every import starts from the same empty database.
pg_schema_url() {
  local s="caplens_bench_$$_${RANDOM}${RANDOM}"
  psql "$pg_url" -qc "CREATE SCHEMA $s" >/dev/null
  local sep='?'; case "$pg_url" in *\?*) sep='&';; esac
  echo "${pg_url}${sep}options=-c%20search_path%3D${s}"
}

is_zero() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) == 0 else 1)" "$1"; }
files=()
if ! is_zero "$plain_bytes"; then python3 "$here/generate.py" plain "$work/plain.jsonl" "$plain_bytes"; files+=(plain); fi
if ! is_zero "$traces_bytes"; then python3 "$here/generate.py" traces "$work/traces.jsonl" "$traces_bytes"; files+=(traces); fi
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

for f in "${files[@]}"; do
  what="native, no traces"; [ "$f" = traces ] && what="native, top-20 logprobs"
  run "$what -> SQLite" "$work/$f.jsonl" ""
  if [ -n "$pg_url" ]; then run "$what -> PostgreSQL" "$work/$f.jsonl" "$(pg_schema_url)"; fi
done

if [[ " ${files[*]} " == *" plain "* ]]; then
  echo "--- what bounds it (plain file)"
  python3 - "$work/plain.jsonl" <<'PY'
import os, sys, time
path = sys.argv[1]
start = time.perf_counter()
with open(path, "rb") as f:
    while f.read(1 << 22):
        pass
secs = time.perf_counter() - start
print(f"read from the page cache            {os.path.getsize(path)/1e6/secs:9.1f} MB/s")
PY
  if [ "${STAGES:-1}" != 0 ]; then
    (cd "$here/../../.." && cargo bench -q -p caplens-server --bench ingest_stages -- "$work/plain.jsonl" 2>/dev/null)
  fi
  if [ "${BARE:-1}" != 0 ]; then
    python3 "$here/bare_insert.py" "$work/plain.jsonl" sqlite "$work/bare.db"
    rm -f "$work"/bare.db*
    if [ -n "$pg_url" ]; then python3 "$here/bare_insert.py" "$work/plain.jsonl" postgres "$(pg_schema_url)"; fi
  fi
fi
