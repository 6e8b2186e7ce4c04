"""Checks the logs lm-eval and Inspect wrote in one run of tests/real-clients/run.sh, and prints
the scores the tools computed (the numbers caplens' importers must reproduce).

Usage: python check_logs.py OUT_DIR
Prints `ok <check>` / `FAIL <check>: <why>` lines and `score <tool> <task> <metric> = <value>`
lines; exits 1 when a check failed.
"""

import glob
import json
import math
import os
import sys
import traceback

out = sys.argv[1]
EOS = "<|im_end|>"
failures = 0


def check(name):
    def run(fn):
        global failures
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
        return fn

    return run


def one(pattern):
    found = sorted(glob.glob(os.path.join(out, pattern), recursive=True))
    assert found, f"nothing matches {pattern} under {out}"
    return found[-1]


def samples(pattern):
    with open(one(pattern)) as f:
        return [json.loads(line) for line in f if line.strip()]


def results(pattern):
    with open(one(pattern)) as f:
        return json.load(f)["results"]


def by_filter(docs):
    """lm-eval writes one sample line per document and filter."""
    out = {}
    for d in docs:
        out.setdefault(d["filter"], []).append(d)
    return out


@check("lm-eval gsm: 4 problems x 4 repeats per filter, no end-of-sequence token, both filters scored")
def _():
    docs = by_filter(samples("lm-eval-generate/**/samples_caplens_tiny_gsm_*.jsonl"))
    assert sorted(docs) == ["flexible-extract", "strict-match"], sorted(docs)
    for f, lines in docs.items():
        assert sorted(d["doc_id"] for d in lines) == [0, 1, 2, 3], (f, [d["doc_id"] for d in lines])
        for d in lines:
            (texts,) = d["resps"]
            assert len(texts) == 4, f"doc {d['doc_id']}: {len(texts)} repeats"
            assert all(isinstance(t, str) and EOS not in t for t in texts), texts
            # gsm8k's filters end in take_first: the first repeat is the one scored.
            assert len(d["filtered_resps"]) == 1, d["filtered_resps"]
            assert d["target"].rsplit("#### ", 1)[-1].strip().isdigit(), d["target"]
    r = results("lm-eval-generate/**/results_*.json")["caplens_tiny_gsm"]
    for f in ("strict-match", "flexible-extract"):
        value = r[f"exact_match,{f}"]
        assert 0.0 <= value <= 1.0, value
        print(f"score lm-eval caplens_tiny_gsm exact_match,{f} = {value}")


@check("lm-eval boxed: 3 problems x 2 repeats, scored by the boxed filter")
def _():
    docs = samples("lm-eval-generate/**/samples_caplens_tiny_boxed_*.jsonl")
    assert sorted(d["doc_id"] for d in docs) == [0, 1, 2], [d["doc_id"] for d in docs]
    for d in docs:
        (texts,) = d["resps"]
        assert len(texts) == 2, texts
        assert all(EOS not in t for t in texts)
    value = results("lm-eval-generate/**/results_*.json")["caplens_tiny_boxed"]["exact_match,boxed"]
    assert 0.0 <= value <= 1.0, value
    print(f"score lm-eval caplens_tiny_boxed exact_match,boxed = {value}")


@check("lm-eval multiple_choice: 4 questions, a finite log-likelihood per choice")
def _():
    docs = samples("lm-eval-loglikelihood/**/samples_caplens_tiny_mc_*.jsonl")
    assert len(docs) == 4, len(docs)
    for d in docs:
        assert len(d["resps"]) == 3, d["resps"]
        for (resp,) in d["resps"]:
            logprob, is_greedy = float(resp[0]), resp[1]
            assert math.isfinite(logprob) and logprob < 0, resp
            assert is_greedy in (True, False, "True", "False"), resp
    r = results("lm-eval-loglikelihood/**/results_*.json")["caplens_tiny_mc"]
    for metric in ("acc", "acc_norm"):
        value = r[f"{metric},none"]
        assert 0.0 <= value <= 1.0, value
        print(f"score lm-eval caplens_tiny_mc {metric},none = {value}")


@check("Inspect: 3 samples x 2 epochs with token logprobs, accuracy stored")
def _():
    with open(one("inspect-json/*.json")) as f:
        log = json.load(f)
    assert log["status"] == "success", log["status"]
    got = log["samples"]
    assert len(got) == 6, len(got)
    assert sorted({s["epoch"] for s in got}) == [1, 2]
    for s in got:
        choice = s["output"]["choices"][0]
        text = choice["message"]["content"]
        text = text if isinstance(text, str) else "".join(c.get("text", "") for c in text)
        assert EOS not in text, text
        content = choice["logprobs"]["content"]
        assert "".join(t["token"] for t in content) == text, (content, text)
    scores = log["results"]["scores"][0]
    value = scores["metrics"]["accuracy"]["value"]
    assert 0.0 <= value <= 1.0, value
    print(f"score inspect tiny_arith {scores['name']} accuracy = {value}")


sys.exit(1 if failures else 0)
