#!/usr/bin/env python3
"""Writes a native JSON Lines file of about BYTES bytes for the ingest benchmark.

  generate.py plain  OUT BYTES   rollouts with ~760-byte responses and their reference (graded
                                 by caplens too), no token data
  generate.py traces OUT BYTES   rollouts of 200 tokens with logprobs and top-20 logprobs

Deterministic (seeded). Three models, 500 problems, samples numbered per model and problem."""
import json, random, sys

def main():
    mode, out, target = sys.argv[1], sys.argv[2], int(float(sys.argv[3]))
    rng = random.Random(7)
    words = ("we compute the sum of the roots then substitute into the equation and simplify "
             "so the value of x satisfies the quadratic hence the answer follows by symmetry").split()
    models = ["bench-base", "bench-sft", "bench-rl"]
    written, i = 0, 0
    samples = {}
    with open(out, "w") as f:
        while written < target:
            model = models[i % 3]
            problem = (i // 3) % 500
            key = (model, problem)
            sample = samples.get(key, 0)
            samples[key] = sample + 1
            reference = problem * 7 % 1000
            correct = rng.random() < 0.3 + 0.2 * (i % 3)
            answer = reference if correct else rng.randint(0, 999)
            line = {"model": model, "dataset": "bench", "problem_id": str(problem), "sample": sample,
                    "correct": correct, "reference": str(reference)}
            if mode == "plain":
                body = " ".join(rng.choice(words) for _ in range(128))
                line["response"] = f"{body}. Therefore the answer is \\boxed{{{answer}}}."
            else:
                tokens = [rng.choice(words) for _ in range(200)]
                line["response"] = " ".join(tokens) + f" \\boxed{{{answer}}}"
                line["tokens"] = tokens
                lps = []
                tops = []
                for t in tokens:
                    lp = -rng.random() * 2
                    lps.append(round(lp, 4))
                    tops.append([[rng.choice(words), round(lp - j * 0.3, 4)] for j in range(20)])
                line["token_logprobs"] = lps
                line["top_logprobs"] = tops
            text = json.dumps(line, separators=(",", ":")) + "\n"
            f.write(text)
            written += len(text)
            i += 1
    print(f"wrote {i} lines, {written / 1e6:.1f} MB to {out}", file=sys.stderr)

main()
