#!/usr/bin/env bash
# Benchmark of issue 7: orchestration overhead per rollout of an evaluation run against
# `caplens engine serve` (the OpenAI-compatible path, over real HTTP): wall time minus the time
# the worker spent waiting on the engine, per rollout. That covers queueing, grading, staging
# (exactly-once inserts), finalisation through the import pipeline and progress polling.
#   tests/bench/evals/run.sh [N] [PROBLEMS] [MAX_TOKENS]     (default 16 samples, 16 problems, 16 tokens)
# Fetches the model if missing, builds the release binary unless CAPLENS points at one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if [ -z "${CAPLENS:-}" ]; then
    (cd "$root" && cargo build --release -q -p caplens-server --bin caplens)
fi
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-$root/target}/release/caplens}")"
model="${CAPLENS_MODEL:-$("$root/scripts/fetch-model.sh")}"
n="${1:-16}" problems="${2:-16}" max_tokens="${3:-16}"
data="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$caplens" engine serve --port "$port" --model-path "$model" >"$data/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 0.2; done
# `engine serve` is on loopback, which engines may reach only when allowed.
export CAPLENS_DATA_DIR="$data" DATABASE_URL="" CAPLENS_LOG=warn CAPLENS_ENGINE_ALLOW=127.0.0.1
"$caplens" engine add local --base-url "http://127.0.0.1:$port" --model SmolLM2-135M-Instruct --api-mode chat >/dev/null
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in local embedded; do
    echo "== engine $mode: $problems problems x $n samples, max $max_tokens tokens (SQLite)"
    "$caplens" eval --engine "$mode" --n "$n" --limit "$problems" --max-tokens "$max_tokens" \
        --experiment "bench-$mode" --model-path "$model" --slots 1 2>&1 | grep -E "^(timing|evaluation)"
done
