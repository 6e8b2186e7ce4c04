#!/usr/bin/env python3
"""Writes the issue-6 benchmark experiment as native JSON Lines: MODELS models x PROBLEMS problems
x N rollouts (graded, with sample indices, no text). Problems alternate the tags' datasets
(aime24 / aime25) so the tag filter has work to do. Deterministic (seeded).

usage: generate.py OUT [MODELS=5] [PROBLEMS=500] [N=640]"""
import json, os, random, sys

out = sys.argv[1]
# BENCH_RESPONSES=1: every rollout also has a short response text (stored in the run's pack).
responses = os.environ.get("BENCH_RESPONSES") == "1"
models, problems, n = (int(a) for a in (sys.argv[2:5] + ["5", "500", "640"][len(sys.argv[2:5]):]))
rng = random.Random(20261126)
difficulty = [rng.random() for _ in range(problems)]
with open(out, "w") as f:
    for m in range(models):
        skill = 0.15 + 0.15 * m
        for p in range(problems):
            dataset = "aime24" if p % 2 == 0 else "aime25"
            rate = max(0.0, min(1.0, skill + 0.6 - 1.3 * difficulty[p]))
            if (p * 7 + m) % 11 == 0:
                rate = 0.0  # some problems a model never solves
            for s in range(n):
                line = {"model": f"bench-m{m}", "dataset": dataset, "problem_id": f"p{p}",
                        "sample": s, "correct": rng.random() < rate}
                if responses:
                    line["response"] = f"We compute step by step; the answer is \\boxed{{{(p * 7 + s) % 97}}}."
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
