#!/usr/bin/env bash
# Benchmark of issue 17: the blob store on the local filesystem against an S3-compatible store,
# in the same run, on the same binary and files:
#   - import throughput of a native file with top-20 log-probabilities (packs written by
#     multipart upload), into a fresh SQLite database;
#   - server time of the token-heatmap page of a 32k-token rollout (one ranged GET of its trace
#     pack per request), "cold" alternating two rollouts so that every request reads its trace.
# The S3 store is moto's standalone server from PyPI (a Python process on this machine), started
# here on a free loopback port unless AWS_ENDPOINT_URL and BENCH_S3_URL name another; its figures
# include moto's own per-request cost, which a real S3 or MinIO does not have in this form.
#   tests/bench/blobs/run.sh [TRACES_BYTES] [TOKENS] [REQUESTS]    (defaults 2.5e8, 32768, 30)
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
traces_bytes="${1:-2.5e8}"
tokens="${2:-32768}"
requests="${3:-30}"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
site="${CAPLENS_SITE_ROOT:-$(dirname "$caplens")/../site}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-blobs-bench.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -z "${BENCH_S3_URL:-}" ]; then
  venv="${CAPLENS_MOTO_VENV:-$HOME/.cache/caplens/moto-venv}"
  if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
  fi
  s3_port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$work/moto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$s3_port/" > /dev/null && break; sleep 0.2; done
  curl -sf -X PUT "http://127.0.0.1:$s3_port/bench" > /dev/null
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ALLOW_HTTP=true
  BENCH_S3_URL="s3://bench/run-$$"
fi

python3 "$here/../ingest/generate.py" traces "$work/traces.jsonl" "$traces_bytes"
python3 "$here/../heatmap/generate.py" "$work/long.jsonl" "$tokens"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); binary $caplens"
echo "S3 endpoint: ${AWS_ENDPOINT_URL:-AWS}"
printf '%-12s %12s %10s %12s %14s %14s %14s\n' store "import MB" "import s" "import MB/s" "heatmap p50 ms" "heatmap p95 ms" "heatmap max ms"

for store in local s3; do
  data="$work/data-$store"
  blob_url=""; [ "$store" = s3 ] && blob_url="$BENCH_S3_URL/$store-$RANDOM"
  cat "$work/traces.jsonl" > /dev/null
  t=$(DATABASE_URL= CAPLENS_BLOB_URL="$blob_url" CAPLENS_LOG=warn python3 "$here/../passk/time_cmd.py" 1 "$work/out.txt" \
      "$caplens" --data-dir "$data" import "$work/traces.jsonl" --experiment import-bench)
  grep -q completed "$work/out.txt" || { cat "$work/out.txt"; exit 1; }
  DATABASE_URL= CAPLENS_BLOB_URL="$blob_url" CAPLENS_LOG=warn "$caplens" --data-dir "$data" import "$work/long.jsonl" \
    --format native --experiment heatmap-bench > "$work/import.txt" 2>&1 || { cat "$work/import.txt"; exit 1; }
  port=$(free_port)
  DATABASE_URL= CAPLENS_BLOB_URL="$blob_url" CAPLENS_LOG=warn "$caplens" serve --addr "127.0.0.1:$port" --data-dir "$data" \
    --site-root "$site" --no-worker > "$work/serve-$store.log" 2>&1 &
  pid=$!; pids+=($pid)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.2; done
  read -r id other < <(python3 -c "import sqlite3,sys; print(*[r[0] for r in sqlite3.connect(sys.argv[1]).execute('SELECT id FROM rollouts WHERE token_count = ? ORDER BY id', (int(sys.argv[2]),))])" "$data/caplens.db" "$tokens")
  curl -s -o /dev/null "http://127.0.0.1:$port/rollouts/$id"
  for i in $(seq "$requests"); do
    r=$id; [ $((i % 2)) = 1 ] && r=$other
    curl -s -o "$work/page.html" -w '%{time_starttransfer}\n' "http://127.0.0.1:$port/rollouts/$r"
  done > "$work/times.txt"
  grep -q 'data-testid="heatmap"' "$work/page.html" || { echo "no heatmap on the page ($store)" >&2; exit 1; }
  python3 - "$store" "$(stat -c %s "$work/traces.jsonl")" "$t" "$work/times.txt" <<'PY'
import json, sys
store, size, t, path = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
ms = sorted(float(x) * 1000 for x in open(path))
p = lambda q: ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]
print(f"{store:<12} {size/1e6:12.1f} {t['wall']:10.2f} {size/1e6/t['wall']:12.1f} {p(0.5):14.1f} {p(0.95):14.1f} {ms[-1]:14.1f}")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
