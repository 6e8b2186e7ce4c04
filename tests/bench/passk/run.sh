#!/usr/bin/env bash
# Benchmark of issue 3: `caplens passk` end to end vs. a short Python script on the same
# 2-million-line native file. Usage: tests/bench/passk/run.sh [LINES]
# Uses the release binary ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}
# (build it first: cargo build --release -p caplens-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lines="${1:-2000000}"
caplens="${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$work/rollouts.jsonl"
python3 "$here/generate.py" "$data" "$lines"
bytes=$(stat -c %s "$data" 2>/dev/null || stat -f %z "$data")
cat "$data" > /dev/null  # warm the page cache so both runs read from memory

now() { python3 -c 'import time; print(time.perf_counter())'; }
best_of() {  # best wall time of 3 runs of "$@" (stdout to $work/out)
  local best=""
  for _ in 1 2 3; do
    local t0 t1
    t0=$(now); "$@" > "$work/out"; t1=$(now)
    best=$(python3 -c "a='$best'; d=$t1-$t0; print(d if not a else min(float(a), d))")
  done
  echo "$best"
}
t_rust=$(best_of "$caplens" passk "$data" --json); cp "$work/out" "$work/rust.json"
t_py=$(python3 -c 'import time,subprocess,sys; t=time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=open(sys.argv[-1]+".out","w")); print(time.perf_counter()-t)' python3 "$here/passk_reference.py" "$data")
cp "$data.out" "$work/py.json"
python3 - "$work/rust.json" "$work/py.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert [m["model"] for m in a["models"]] == [m["model"] for m in b["models"]], "model order differs"
for ma, mb in zip(a["models"], b["models"]):
    assert (ma["problems"], ma["rollouts"]) == (mb["problems"], mb["rollouts"])
    for pa, pb in zip(ma["points"], mb["points"], strict=True):
        assert pa["k"] == pb["k"] and pa["problems"] == pb["problems"]
        assert abs(pa["pass_at_k"] - pb["pass_at_k"]) < 1e-9, (pa, pb)
print("results agree (to 1e-9)")
PY
python3 -c "
b=$bytes; r=$t_rust; p=$t_py
print(f'input: $lines lines, {b/1e6:.1f} MB')
print(f'caplens passk: {r:.3f} s  ({b/1e6/r:.0f} MB/s)')
print(f'python       : {p:.3f} s  ({b/1e6/p:.1f} MB/s)')
print(f'ratio        : {p/r:.1f}x')
"
