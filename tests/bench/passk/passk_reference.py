#!/usr/bin/env python3
"""The same computation as `caplens passk --json` in plain Python: json per line and the
human-eval product formula 1 - prod_{i=n-c+1..n} (1 - k/i)."""
import json, math, sys

def pass_at_k(n, c, k):
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))

def main():
    counts = {}  # model -> {problem: [n, c]}; dicts keep first-appearance order
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                key = f"{r['dataset']}/{r['problem_id']}" if r.get("dataset") is not None else str(r["problem_id"])
                nc = counts.setdefault(r["model"], {}).setdefault(key, [0, 0])
                if "correct" in r:
                    nc[0] += 1
                    nc[1] += 1 if r["correct"] else 0
                else:
                    nc[0] += r["n"]
                    nc[1] += r["c"]
    max_n = max((nc[0] for probs in counts.values() for nc in probs.values()), default=0)
    ks, k = [], 1
    while k <= max_n:
        ks.append(k)
        k *= 2
    if max_n and ks[-1] != max_n:
        ks.append(max_n)
    models = []
    for m, probs in counts.items():
        points = []
        for k in ks:
            vals = [pass_at_k(n, c, k) for n, c in probs.values() if n >= k]
            if vals:
                points.append({"k": k, "pass_at_k": sum(vals) / len(vals), "problems": len(vals)})
        models.append({"model": m, "problems": len(probs), "rollouts": sum(n for n, _ in probs.values()), "points": points})
    print(json.dumps({"models": models}))

main()
