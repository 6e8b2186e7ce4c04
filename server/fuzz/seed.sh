#!/usr/bin/env bash
# Fills corpus/<target>/ with seeds from the real logs and format fixtures (tests/fixtures/real,
# tests/fixtures/formats), plus gzip/zstd copies of the JSON Lines ones (the importers
# decompress by magic bytes), a few native lines and the committed bombs of seeds/. corpus/ is
# not committed: run this before `cargo fuzz run` (docs/fuzzing.md). Idempotent; libFuzzer adds
# what it finds to the same dirs.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../../tests/fixtures
real=$fixtures/real
formats=$fixtures/formats

seed() { # target files...
    local target=$1; shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        local base
        base=$(basename "$f" | tr '|' '_')
        cp "$f" "corpus/$target/$base"
    done
}
compressed() { # target file: gzip and zstd copies
    local target=$1 f=$2 base
    base=$(basename "$f" | tr '|' '_')
    gzip -9 -c "$f" > "corpus/$target/$base.gz"
    if command -v zstd > /dev/null; then zstd -q -19 -c "$f" > "corpus/$target/$base.zst"; fi
}

mkdir -p corpus/native
cat > corpus/native/doc-example.jsonl <<'JSONL'
{"model":"qwen2.5-math-7b","dataset":"aime24","problem_id":"17","sample":0,"correct":false,"response":"... \\boxed{12}"}
{"model":"qwen2.5-math-7b","dataset":"aime24","problem_id":"18","n":640,"c":3}
JSONL
cat > corpus/native/tokens.jsonl <<'JSONL'
{"model":"m","dataset":null,"problem_id":3,"sample":1,"correct":true,"response":"\\boxed{4}","answer":"4","reference":"4","tokens":["\\boxed","{4}"],"token_logprobs":[-0.1,null],"top_logprobs":[[["\\boxed",-0.1],["x",-3.2]],null],"token_entropies":[0.5,null],"token_rbf":[1,null],"token_hidden_norms":[12.5,null],"finish_reason":"stop","step":250}
{"model":"m","problem_id":"counts","n":0,"c":0}

{"model":"m","problem_id":"bad","correct":"yes"}
JSONL
compressed native corpus/native/tokens.jsonl

jsonl=(
    "$formats"/lm-eval/*.jsonl "$formats"/lm-eval/*.jsonl.gz
    "$real"/lm-eval/*/samples_*.jsonl
    "$formats"/qwen-math/math500/*.jsonl
    "$formats"/verl/*.jsonl
    "$formats"/openai/*.jsonl
)
# Each JSON Lines target gets every JSON Lines fixture (the wrong formats exercise the
# rejections), its own compressed, and an lm-eval results file (a JSON document, not lines).
for target in native lm_eval qwen_math verl openai; do
    seed "$target" "${jsonl[@]}" "$real"/lm-eval/caplens_tiny_mc/results_*.json
done
compressed lm_eval "$real"/lm-eval/caplens_tiny_gsm/samples_*.jsonl
compressed qwen_math "$formats"/qwen-math/math500/*.jsonl
compressed verl "$formats"/verl/100.jsonl
compressed openai "$formats"/openai/chat.jsonl

seed inspect "$formats"/inspect/log.eval "$formats"/inspect/log.json \
    "$real"/inspect/*.eval "$real"/inspect/*.json "$real"/inspect-engine/*
compressed inspect "$formats"/inspect/log.json

seed lighteval "$formats"/lighteval/*.parquet "$fixtures"/datasets/*.parquet

seed detect corpus/native/*.jsonl "${jsonl[@]}" "$real"/lm-eval/*/results_*.json \
    "$formats"/inspect/log.eval "$formats"/inspect/log.json "$real"/inspect/arith_killed.eval \
    "$formats"/lighteval/*.parquet "$fixtures"/datasets/*.parquet

# Decompression bombs (committed: seeds/<target>/, written by `write_fuzz_seeds` in
# server/tests/hostile_inputs.rs), so the targets start from inputs at and past the limits of
# server/src/ingest/limits.rs rather than reach them by mutation (they do not).
for dir in seeds/*/; do
    seed "$(basename "$dir")" "$dir"*
done

for d in corpus/*/; do echo "$d: $(ls "$d" | wc -l) seeds, $(du -sh "$d" | cut -f1)"; done
