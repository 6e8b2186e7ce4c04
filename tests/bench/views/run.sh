#!/usr/bin/env bash
# Benchmark of issue 6: server time of the overview, pass@k and unsolvable pages of a generated
# experiment (5 models x 500 problems x 640 rollouts = 1.6M rollouts) on SQLite.
#   tests/bench/views/run.sh [MODELS] [PROBLEMS] [N]
# Prints p50/p95 over 200 sequential requests per page (warm), then 100 concurrent clients for
# 10 s per page with wrk (installed from Debian if missing): requests/s, p50/p95/p99, errors.
# Uses ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens} (cargo build --release -p caplens-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }
work="$(mktemp -d "${BENCH_DIR:-/tmp}/caplens-views-bench.XXXXXX")"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 "$here/generate.py" "$work/bench.jsonl" "${1:-5}" "${2:-500}" "${3:-640}"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
DATABASE_URL= CAPLENS_LOG=warn "$caplens" --data-dir "$work/data" import "$work/bench.jsonl" --experiment bench-views >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL= CAPLENS_LOG=warn "$caplens" serve --data-dir "$work/data" --addr "127.0.0.1:$port" --no-demo >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
base="http://127.0.0.1:$port/experiments/bench-views"
python3 "$here/latency.py" "$base" "$base/passk" "$base/passk?tag=aime24" "$base/unsolvable" "$base/unsolvable?k=8"
for path in "" /passk /unsolvable; do
  echo "wrk: 100 connections, 2 threads, 10 s: GET /experiments/bench-views$path"
  wrk -t2 -c100 -d10s --latency -s "$here/report.lua" "$base$path" | grep -E "Requests/sec|p50|p95|p99|errors|Non-2xx|Socket errors" || true
done
