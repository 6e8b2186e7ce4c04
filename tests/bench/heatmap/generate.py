#!/usr/bin/env python3
"""Writes a native JSON Lines file with two rollouts (samples 0 and 1) of TOKENS tokens (default
32768), each token with its log-probability and top-20 alternatives, for the token-heatmap
benchmark. Deterministic.

  generate.py OUT [TOKENS]"""
import json, math, random, sys

def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 32768
    rng = random.Random(11)
    words = (" we compute the sum of the roots then substitute into equation and simplify so"
             " value x satisfies quadratic hence answer follows by symmetry $ \\frac { 1 } 2 ^"
             " wait let me check").split(" ")
    vocab = [" " + w for w in words if w] + ["\n", ".", ",", " =", " +", "1", "2", "3"]
    with open(out, "w") as f:
        for sample in range(2):
            f.write(json.dumps(rollout(rng, vocab, n, sample)) + "\n")

def rollout(rng, vocab, n, sample):
    tokens, logprobs, top = [], [], []
    for i in range(n):
        # 20 alternatives with a random peaked distribution; the chosen one is drawn from them.
        cands = rng.sample(vocab, 20)
        weights = [rng.random() ** 4 for _ in cands]
        weights[0] += rng.random() * 4
        total = sum(weights) / rng.uniform(0.85, 0.999)  # leave some mass unlisted
        lps = [math.log(w / total) for w in weights]
        pick = rng.choices(range(20), weights=weights)[0]
        tokens.append(cands[pick])
        logprobs.append(round(lps[pick], 6))
        top.append([[c, round(lp, 6)] for c, lp in sorted(zip(cands, lps), key=lambda t: -t[1])])
    tokens[-1] = " \\boxed{7}"
    top[-1][0][0] = tokens[-1]
    logprobs[-1] = top[-1][0][1]
    return {"model": "bench-heatmap", "dataset": "bench-heatmap", "problem_id": "long",
            "sample": sample, "correct": True, "reference": "7", "response": "".join(tokens),
            "tokens": tokens, "token_logprobs": logprobs, "top_logprobs": top}

if __name__ == "__main__":
    main()
