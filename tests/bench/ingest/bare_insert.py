#!/usr/bin/env python3
"""The physical limit of the ingest benchmark's database side: the rows caplens stores for a
native file (the rollouts table's columns), bulk-inserted with nothing else done, into a table
with the same columns, keys and indexes as caplens' `rollouts`.

  bare_insert.py FILE sqlite DB_PATH
  bare_insert.py FILE postgres URL        (URL may carry options=-c search_path=...)

SQLite: one transaction of executemany (C loop) with the WAL and synchronous=NORMAL caplens
uses. PostgreSQL: `\\copy ... FROM STDIN (FORMAT csv)` through psql, in one transaction. Only
the insert is timed (the rows are built beforehand). Prints one line: rows, seconds, MB/s of the
file."""
import csv, io, json, os, sqlite3, subprocess, sys, time

SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY);
CREATE TABLE problems (id INTEGER PRIMARY KEY);
CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY{serial},
  run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  problem_id BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
  sample_index BIGINT NOT NULL, response TEXT, extracted_answer TEXT, correct BIGINT NOT NULL,
  token_count BIGINT, finish_reason TEXT, mean_entropy DOUBLE PRECISION,
  mean_rbf DOUBLE PRECISION, perplexity DOUBLE PRECISION, quality_flags BIGINT NOT NULL DEFAULT 0,
  trace_key TEXT, trace_offset BIGINT, trace_length BIGINT, file_correct INTEGER,
  caplens_verdict INTEGER, UNIQUE (run_id, problem_id, sample_index));
CREATE INDEX rollouts_problem ON rollouts(problem_id);
"""

def rows(path):
    models, problems, out = {}, {}, []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            run = models.setdefault(d["model"], len(models) + 1)
            problem = problems.setdefault(d["problem_id"], len(problems) + 1)
            response = d.get("response")
            answer = response.rsplit("\\boxed{", 1)[-1].split("}")[0] if response else None
            out.append((run, problem, d["sample"], response, answer, int(d["correct"]),
                        int(d["correct"]), int(d["correct"])))
    return len(models), len(problems), out

def main():
    path, backend, target = sys.argv[1], sys.argv[2], sys.argv[3]
    size = os.path.getsize(path)
    n_runs, n_problems, data = rows(path)
    cols = "run_id, problem_id, sample_index, response, extracted_answer, correct, file_correct, caplens_verdict"
    if backend == "sqlite":
        db = sqlite3.connect(target, isolation_level=None)
        db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                         "PRAGMA cache_size=-65536;" + SCHEMA.format(serial=""))
        db.executemany("INSERT INTO runs VALUES (?)", [(i,) for i in range(1, n_runs + 1)])
        db.executemany("INSERT INTO problems VALUES (?)", [(i,) for i in range(1, n_problems + 1)])
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"INSERT INTO rollouts ({cols}) VALUES (?,?,?,?,?,?,?,?)", data)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        secs = time.perf_counter() - start
    else:
        setup = SCHEMA.format(serial="").replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY", 3)
        setup += f"INSERT INTO runs SELECT generate_series(1, {n_runs});"
        setup += f"INSERT INTO problems SELECT generate_series(1, {n_problems});"
        subprocess.run(["psql", target, "-qc", setup], check=True)
        buf = io.StringIO()
        csv.writer(buf).writerows(data)
        payload = buf.getvalue().encode()
        start = time.perf_counter()
        subprocess.run(["psql", target, "-q", "-1", "-c", f"\\copy rollouts ({cols}) FROM STDIN (FORMAT csv)"],
                       input=payload, check=True)
        secs = time.perf_counter() - start
    print(f"bare bulk insert -> {backend:<10} {size/1e6:8.1f} MB  {len(data):>9} rows  {secs:7.2f} s  "
          f"{size/1e6/secs:7.1f} MB/s  {len(data)/secs:9.0f} rows/s")

main()
