#!/usr/bin/env bash
# Benchmark of issue 7: embedded engine tokens/s at batch 1, 8 and 32 (SmolLM2-135M-Instruct,
# F32 on the CPU, sampling at temperature 0.6 / top-p 0.95 with top-5 logprobs and exact
# entropy and RBF per token).
#   tests/bench/engine/run.sh [BATCHES] [TOKENS]        (default: 1,8,32 and 128)
# Fetches the model if missing (scripts/fetch-model.sh), builds the release binary unless
# CAPLENS points at one, and prints tokens/s per batch size.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
if [ -z "${CAPLENS:-}" ]; then
    (cd "$root" && cargo build --release -q -p caplens-server --bin caplens)
fi
caplens="$(realpath "${CAPLENS:-${CARGO_TARGET_DIR:-$root/target}/release/caplens}")"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
model="${CAPLENS_MODEL:-$("$root/scripts/fetch-model.sh")}"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$caplens" engine bench --model-path "$model" --batch "${1:-1,8,32}" --tokens "${2:-128}"
