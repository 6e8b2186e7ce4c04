#!/usr/bin/env bash
# Benchmark of issue 6, page 6: server time of the token-heatmap page of a 32k-token rollout
# with top-20 log-probabilities (target: under 100 ms). Imports a generated file (two such
# rollouts) into a fresh SQLite data directory, starts `caplens serve` on a free loopback port,
# and times GET requests of the rollout page (server-rendered in full before the first byte:
# time to first byte is the server time) for each metric and with a `pos=` permalink. "cold"
# alternates between the two rollouts, so every request reads and decodes its trace; "warm"
# repeats one rollout (the server keeps the last decoded trace). Prints p50 / p95 / max and the
# page size, plain and gzip.
#   tests/bench/heatmap/run.sh [TOKENS] [REQUESTS]      (defaults: 32768 and 30)
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} and its site
# ${CAPLENS_SITE_ROOT:-$(dirname CAPLENS)/../site}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tokens="${1:-32768}"
requests="${2:-30}"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
site="${CAPLENS_SITE_ROOT:-$(dirname "$caplens")/../site}"
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-heatmap-bench.XXXXXX")"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$here/generate.py" "$work/long.jsonl" "$tokens"
DATABASE_URL= CAPLENS_LOG=warn "$caplens" --data-dir "$work/data" import "$work/long.jsonl" --format native \
  --experiment heatmap-bench > "$work/import.txt" 2>&1 || { cat "$work/import.txt"; exit 1; }
grep -q completed "$work/import.txt" || { cat "$work/import.txt"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL= CAPLENS_LOG=warn "$caplens" serve --addr "127.0.0.1:$port" --data-dir "$work/data" \
  --site-root "$site" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.2; done
read -r id other < <(python3 -c "import sqlite3,sys; print(*[r[0] for r in sqlite3.connect(sys.argv[1]).execute('SELECT id FROM rollouts WHERE token_count = ? ORDER BY id', (int(sys.argv[2]),))])" "$work/data/caplens.db" "$tokens")
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); binary $caplens"
echo "rollouts $id and $other: $tokens tokens each, trace $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT trace_length FROM rollouts WHERE id = ?', (int(sys.argv[2]),)).fetchone()[0])" "$work/data/caplens.db" "$id") bytes"
printf '%-40s %9s %9s %9s %9s %9s\n' "GET /rollouts/{$id,$other}" "p50 ms" "p95 ms" "max ms" "page KB" "gzip KB"
for mode in cold warm; do
for query in "" "?metric=rbf" "?metric=logprob" "?metric=gradnorm" "?metric=entropy&pos=16000" "?view=text"; do
  url="http://127.0.0.1:$port/rollouts/$id$query"
  curl -s -o /dev/null "$url"  # warm-up
  for i in $(seq "$requests"); do
    if [ "$mode" = cold ] && [ $((i % 2)) = 1 ]; then
      curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$port/rollouts/$other$query"
    else
      curl -s -o "$work/page.html" -w '%{time_starttransfer}\n' "$url"
    fi
  done > "$work/times.txt"
  gz=$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}' "$url")
  python3 - "$mode ${query:-(default: entropy)}" "$work/times.txt" "$(stat -c %s "$work/page.html")" "$gz" <<'PY'
import sys
label, path, size, gz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = sorted(float(x) * 1000 for x in open(path))
p = lambda q: t[min(len(t) - 1, int(round(q * (len(t) - 1))))]
print(f"{label:<40} {p(0.5):9.1f} {p(0.95):9.1f} {t[-1]:9.1f} {size/1024:9.0f} {gz/1024:9.0f}")
PY
done
done
