#!/usr/bin/env bash
# Benchmark of issue 3: `caplens passk` end to end vs. a short Python script on the same
# 2-million-line native file. Usage: tests/bench/passk/run.sh [LINES]
# Uses the release binary ${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}
# (build it first: cargo build --release -p caplens-server). DATA=FILE reuses a generated file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lines="${1:-2000000}"
caplens="${CAPLENS:-${CARGO_TARGET_DIR:-target}/release/caplens}"
[ -x "$caplens" ] || { echo "no binary at $caplens (set CAPLENS or build the release binary)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$work/rollouts.jsonl"
if [ -n "${DATA:-}" ] && [ -f "$DATA" ]; then
  data="$DATA"  # reuse a file written earlier by generate.py (saves ~10 s per run)
  lines=$(wc -l < "$data" | tr -d ' ')
else
  python3 "$here/generate.py" "$data" "$lines"
fi
bytes=$(stat -c %s "$data" 2>/dev/null || stat -f %z "$data")
cat "$data" > /dev/null  # warm the page cache so both runs read from memory

# Best of 3 for caplens, one run of the (slow) Python script; wall and CPU (user + sys) time.
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)
t_rust=$(python3 "$here/time_cmd.py" 3 "$work/rust.json" "$caplens" passk "$data" --json)
t_py=$(python3 "$here/time_cmd.py" 1 "$work/py.json" python3 "$here/passk_reference.py" "$data")
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
python3 - "$bytes" "$lines" "$t_rust" "$t_py" "$load_before" "$(nproc 2>/dev/null || echo '?')" <<'PY'
import json, sys
b, lines = int(sys.argv[1]), sys.argv[2]
r, p = json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"input: {lines} lines, {b/1e6:.1f} MB; load average before: {sys.argv[5]} on {sys.argv[6]} CPUs")
print(f"caplens passk: {r['wall']:.3f} s wall, {r['cpu']:.3f} s CPU  ({b/1e6/r['wall']:.0f} MB/s; best of 3)")
print(f"python       : {p['wall']:.3f} s wall, {p['cpu']:.3f} s CPU  ({b/1e6/p['wall']:.1f} MB/s)")
print(f"ratio        : {p['wall']/r['wall']:.1f}x wall, {p['cpu']/r['cpu']:.1f}x CPU")
PY
