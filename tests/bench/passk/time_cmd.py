#!/usr/bin/env python3
"""Runs a command RUNS times with stdout to OUT and prints the best run as JSON:
{"wall": seconds, "cpu": user + system seconds, "max_rss_mb": peak resident memory of that run}. Timing happens in this one process
(around fork/exec and wait), so no interpreter start-up is charged to the command."""
import json, os, sys, time

def main():
    runs, out, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    best = None
    for _ in range(runs):
        with open(out, "wb") as f:
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os.dup2(f.fileno(), 1)
                os.execvp(cmd[0], cmd)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed with status {status}")
        run = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}
        if best is None or run["wall"] < best["wall"]:
            best = run
    print(json.dumps(best))

main()
