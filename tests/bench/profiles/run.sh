#!/usr/bin/env bash
# Build profiles (issue 17): are pages and imports as fast with the quick-to-build `release`
# profile (what scripts/run.sh starts) as with `dist` (one codegen unit, thin LTO)? Runs the
# same benchmarks, back to back, on each binary given:
#   - import of a native file into SQLite (tests/bench/ingest/run.sh, SQLite only);
#   - the 32k-token heatmap page (tests/bench/heatmap/run.sh);
#   - the overview, pass@k and unsolvable pages of a generated experiment
#     (tests/bench/views/run.sh, 5 models x 500 problems x 64 samples).
#   tests/bench/profiles/run.sh BINARY... (e.g. target/release/caplens target/dist/caplens)
# Each binary's site is found as for the other benchmarks (CAPLENS_SITE_ROOT or beside it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
for bin in "$@"; do
  bin="$(realpath "$bin")"
  echo "=== $bin ($(stat -c %s "$bin" | awk '{printf "%.0f MB", $1/1e6}'))"
  CAPLENS="$bin" STAGES=0 BARE=0 BENCH_POSTGRES_URL= "$here/../ingest/run.sh" 5e8 0 | grep -E "SQLite|machine"
  CAPLENS="$bin" "$here/../heatmap/run.sh" 32768 30 | grep -E "p50|default|text"
  CAPLENS="$bin" "$here/../views/run.sh" 5 500 64 | grep -vE "^wrk|Socket errors" | head -12
done
