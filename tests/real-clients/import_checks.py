"""caplens imports what the real tools just wrote (run.sh's output directory) with the numbers
the tools themselves report: `caplens import --json` into a fresh SQLite database, then

- each lm-eval generate_until samples file: every (document, repeat) is a rollout, lm-eval's own
  verdict is kept for one rollout per document (its filtered, first repeat), and the mean of those
  verdicts (from the database) is the exact_match lm-eval stored in results_*.json;
- the Inspect .eval log and its .json conversion: pass@1 equals the accuracy Inspect stored.

Usage: import_checks.py CAPLENS_BIN OUT_DIR. Prints `ok ...` / `FAIL ...` lines.
"""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

BIN, OUT = sys.argv[1], sys.argv[2]


def caplens_import(path, data_dir, *extra):
    proc = subprocess.run(
        [BIN, "import", path, "--data-dir", data_dir, "--json", *extra],
        capture_output=True, text=True, timeout=600,
    )
    return json.loads(proc.stdout)


def check(ok, what):
    print(("ok " if ok else "FAIL ") + what)


for samples in sorted(glob.glob(f"{OUT}/lm-eval-generate/**/samples_*.jsonl", recursive=True)):
    name = os.path.basename(samples)
    task = name[len("samples_"):].rsplit("_", 1)[0]
    results_file = glob.glob(os.path.join(os.path.dirname(samples), "results_*.json"))[0]
    results = json.load(open(results_file))["results"][task]
    lines = [json.loads(l) for l in open(samples)]
    first_filter = lines[0]["filter"]
    docs = [l for l in lines if l["filter"] == first_filter]
    stored = results[f"exact_match,{first_filter}"]
    with tempfile.TemporaryDirectory() as data:
        report = caplens_import(samples, data, "--model", "smol")
        run = report["runs"][0] if report.get("runs") else None
        check(report["status"] == "completed" and run is not None,
              f"caplens imports {name} ({report['status']}: {report.get('message')})")
        if run is None:
            continue
        repeats = sum(len(d["resps"][0]) for d in docs)
        check(run["rollouts"] == repeats and report["verdicts"]["graded_by_file"] == len(docs),
              f"{task}: {repeats} rollouts, lm-eval's verdict kept on {len(docs)} (got {run['rollouts']}, {report['verdicts']['graded_by_file']})")
        db = sqlite3.connect(os.path.join(data, "caplens.db"))
        (mean,) = db.execute("SELECT AVG(file_correct) FROM rollouts WHERE file_correct IS NOT NULL").fetchone()
        check(abs(mean - stored) < 1e-9, f"{task}: lm-eval's exact_match,{first_filter} {stored} = caplens' kept verdicts {mean}")

from inspect_ai.log import read_eval_log  # noqa: E402  (the venv has inspect-ai)

for log in sorted(glob.glob(f"{OUT}/inspect/*.eval")) + sorted(glob.glob(f"{OUT}/inspect-json/*.json")):
    accuracy = read_eval_log(log).results.scores[0].metrics["accuracy"].value
    with tempfile.TemporaryDirectory() as data:
        report = caplens_import(log, data)
        runs = report.get("runs") or []
        got = runs[0]["pass_at_1"] if runs else None
        check(got is not None and abs(got - accuracy) < 1e-9,
              f"caplens imports {os.path.basename(log)} with Inspect's accuracy {accuracy} (pass@1 {got})")
