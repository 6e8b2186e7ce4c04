#!/usr/bin/env python3
"""Writes LINES native rollout lines (default 2,000,000) to PATH: 4 models x 500 problems x 1000
samples, seeded, so every run benchmarks the same bytes."""
import json, random, sys

def main():
    path = sys.argv[1]
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    models = ["qwen2.5-math-7b", "r1-distill-qwen-7b", "skywork-or1-math-7b", "qwen2.5-math-7b-tir"]
    problems = 500
    samples = max(1, lines // (len(models) * problems))
    rng = random.Random(20261101)
    written = 0
    with open(path, "w") as f:
        for m in models:
            for p in range(problems):
                rate = rng.random() ** 3
                for s in range(samples):
                    if written == lines:
                        return
                    correct = rng.random() < rate
                    f.write(json.dumps({"model": m, "dataset": "aime24", "problem_id": f"p{p:04d}",
                                        "sample": s, "correct": correct,
                                        "answer": str(rng.randrange(1000)), "finish_reason": "stop"},
                                       separators=(",", ":")) + "\n")
                    written += 1

main()
