#!/usr/bin/env bash
# Drives `caplens engine serve` (the embedded SmolLM2 model) with the real clients our users run
# against vLLM, and checks that they work and that what they write makes sense:
#   1. the `openai` package (openai_checks.py): completions with one prompt, a prompt array,
#      stream=True and echo+logprobs; chat plain and streamed with include_usage; error shapes;
#   2. lm-evaluation-harness `local-completions` with --batch_size 4 (prompt arrays): two
#      generate_until tasks (gsm8k-style "#### N", \boxed{}) and a log-likelihood
#      multiple_choice task (echo + logprobs, lm-eval's `tokenizer_backend=remote`), all with
#      --log_samples;
#   3. Inspect AI `inspect eval` through `openai-api/local/<model>` (3 samples, 2 epochs), then
#      `inspect log convert` to .json;
#   4. `caplens import` of every log they wrote (import_checks.py): lm-eval's stored exact_match and
#      Inspect's accuracy reproduced.
#
# Usage (from anywhere; it works in the repository root):
#   tests/real-clients/run.sh [PATH/TO/caplens]
# The binary defaults to $CAPLENS_BIN, else ${CARGO_TARGET_DIR:-target}/debug/caplens.
# Environment:
#   CAPLENS_PY_VENV   the Python venv (created and filled from PyPI when missing;
#                     default ~/.cache/caplens/venv-real-clients)
#   CAPLENS_MODEL     the GGUF model (default: what scripts/fetch-model.sh fetches)
#   CAPLENS_REAL_CLIENTS_OUT  where the tools write their logs (default: a fresh temp dir, kept
#                     and printed at the end)
# Prints `real-clients: N passed, M failed` last; exits non-zero when anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/real-clients"
cd "$ROOT"

OPENAI_VERSION="3.57.0"
LM_EVAL_VERSION="0.4.13"
INSPECT_VERSION="0.3.285"
MODEL_NAME="smol"

BIN="${1:-${CAPLENS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/caplens}}"
VENV="${CAPLENS_PY_VENV:-$HOME/.cache/caplens/venv-real-clients}"
OUT="${CAPLENS_REAL_CLIENTS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/caplens-real-clients.XXXXXX")}"
mkdir -p "$OUT"

say() { printf '\n== real-clients: %s\n' "$*"; }
die() { printf 'real-clients: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "no caplens binary at $BIN (build it with cargo build -p caplens-server, or pass its path)"

# --- the Python venv with the pinned clients --------------------------------------------------
PY="$VENV/bin/python"
have_clients() {
    [ -x "$PY" ] && "$PY" - "$OPENAI_VERSION" "$LM_EVAL_VERSION" "$INSPECT_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["openai", "lm_eval", "inspect_ai"], sys.argv[1:]))
sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
EOF
}
if ! have_clients; then
    say "installing openai==$OPENAI_VERSION, lm-eval[api]==$LM_EVAL_VERSION, inspect-ai==$INSPECT_VERSION into $VENV"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "openai==$OPENAI_VERSION" "lm-eval[api]==$LM_EVAL_VERSION" "inspect-ai==$INSPECT_VERSION"
    have_clients || die "the venv at $VENV still lacks the pinned clients"
fi

# --- the server ----------------------------------------------------------------------------
CAPLENS_MODEL="${CAPLENS_MODEL:-$("$ROOT/scripts/fetch-model.sh")}"
export CAPLENS_MODEL
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
say "starting $BIN engine serve on $BASE (log: $OUT/server.log)"
"$BIN" engine serve --host 127.0.0.1 --port "$PORT" --served-model-name "$MODEL_NAME" \
    --model-path "$CAPLENS_MODEL" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
stop_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap stop_server EXIT

up=0
for _ in $(seq 1 240); do
    if "$PY" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$BASE/health" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; die "the server exited"; }
    sleep 0.5
done
[ "$up" = 1 ] || { cat "$OUT/server.log" >&2; die "the server did not answer /health within 120 s"; }

# --- checks ------------------------------------------------------------------------------------
passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
# check NAME LOG COMMAND...: one check, passed when the command exits 0; its output goes to LOG
# (the end of which is shown when it fails).
check() {
    local name="$1" log="$2"
    shift 2
    if "$@" >"$log" 2>&1; then
        pass "$name"
    else
        fail "$name (see $log)"
        tail -n 30 "$log" | cut -c1-400
    fi
}

# Offline: the tasks read local JSONL files; nothing comes from the Hugging Face Hub.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export HF_DATASETS_CACHE="$OUT/hf-datasets"

say "the openai client"
set +e
"$PY" "$HERE/openai_checks.py" "$BASE/v1" "$MODEL_NAME" >"$OUT/openai.log" 2>&1
set -e
cat "$OUT/openai.log" | grep -E '^(ok|FAIL) ' || true
passed=$((passed + $(grep -c '^ok ' "$OUT/openai.log" || true)))
failed=$((failed + $(grep -c '^FAIL ' "$OUT/openai.log" || true)))
grep -q '^ok ' "$OUT/openai.log" || { fail "openai_checks.py ran (see $OUT/openai.log)"; tail -20 "$OUT/openai.log"; }

say "lm-eval generate_until tasks (local-completions, --batch_size 4: prompt arrays)"
check "lm_eval caplens_tiny_gsm,caplens_tiny_boxed exits 0" "$OUT/lm-eval-generate.log" \
    "$VENV/bin/lm_eval" --model local-completions \
    --model_args "model=$MODEL_NAME,base_url=$BASE/v1/completions,tokenized_requests=False,tokenizer_backend=none,num_concurrent=1,max_retries=1" \
    --tasks caplens_tiny_gsm,caplens_tiny_boxed --include_path "$HERE/lm-eval" \
    --batch_size 4 --log_samples --output_path "$OUT/lm-eval-generate"

say "lm-eval log-likelihood task (echo + logprobs; token ids from the server's /tokenize)"
check "lm_eval caplens_tiny_mc exits 0" "$OUT/lm-eval-loglikelihood.log" \
    "$VENV/bin/lm_eval" --model local-completions \
    --model_args "model=$MODEL_NAME,base_url=$BASE/v1/completions,tokenizer_backend=remote,tokenized_requests=True,num_concurrent=1,max_retries=1" \
    --tasks caplens_tiny_mc --include_path "$HERE/lm-eval" \
    --batch_size 4 --log_samples --output_path "$OUT/lm-eval-loglikelihood"

say "Inspect AI (openai-api/local/$MODEL_NAME)"
# Inspect takes the task file relative to the working directory (the repository root).
check "inspect eval tiny_arith exits 0" "$OUT/inspect.log" \
    env LOCAL_BASE_URL="$BASE/v1" LOCAL_API_KEY=not-a-real-key \
    "$VENV/bin/inspect" eval tests/real-clients/inspect/tiny_arith.py --model "openai-api/local/$MODEL_NAME" \
    --log-dir "$OUT/inspect" --display plain --max-connections 1
eval_log="$(ls "$OUT"/inspect/*.eval 2>/dev/null | head -n 1 || true)"
check "inspect log convert --to json" "$OUT/inspect-convert.log" \
    "$VENV/bin/inspect" log convert "${eval_log:-missing.eval}" --to json --output-dir "$OUT/inspect-json"

say "what the tools wrote"
set +e
"$PY" "$HERE/check_logs.py" "$OUT" >"$OUT/check_logs.log" 2>&1
set -e
cat "$OUT/check_logs.log"
passed=$((passed + $(grep -c '^ok ' "$OUT/check_logs.log" || true)))
failed=$((failed + $(grep -c '^FAIL ' "$OUT/check_logs.log" || true)))
grep -q '^ok ' "$OUT/check_logs.log" || fail "check_logs.py ran (see $OUT/check_logs.log)"

say "caplens imports what the tools wrote, with the numbers they report"
set +e
"$PY" "$HERE/import_checks.py" "$BIN" "$OUT" >"$OUT/import_checks.log" 2>&1
set -e
cat "$OUT/import_checks.log"
passed=$((passed + $(grep -c '^ok ' "$OUT/import_checks.log" || true)))
failed=$((failed + $(grep -c '^FAIL ' "$OUT/import_checks.log" || true)))
grep -q '^ok ' "$OUT/import_checks.log" || fail "import_checks.py ran (see $OUT/import_checks.log)"

# The server logged every request, and never a key.
check "the server logged the requests" /dev/null grep -q 'engine request' "$OUT/server.log"
check "the server log holds no API key" /dev/null bash -c '! grep -q "not-a-real-key" "$1"' _ "$OUT/server.log"

stop_server
echo
echo "logs in $OUT"
echo "real-clients: $passed passed, $failed failed"
[ "$failed" = 0 ]
