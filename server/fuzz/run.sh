#!/usr/bin/env bash
# Runs one importer fuzz target the way docs/fuzzing.md reports it:
#   server/fuzz/run.sh TARGET [RUNS] [extra libFuzzer flags...]
# Seeds corpus/TARGET from the fixtures (seed.sh), uses the target's dictionary, bounds memory
# (-rss_limit_mb=2048) and time per input (-timeout=10), and prints libFuzzer's final stats
# (executions, exec/s, peak RSS). Needs nightly or RUSTC_BOOTSTRAP=1 and cargo-fuzz. Built
# without a sanitizer (-s none): the importers are safe Rust, and it runs several times faster.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh TARGET [RUNS] [libFuzzer flags...]}
runs=${2:-1000000}
shift $(( $# >= 2 ? 2 : 1 ))
[ -d "corpus/$target" ] || ./seed.sh > /dev/null
# The inspect seeds include a 330 KB log; longer inputs than this only slow the search down.
case "$target" in
    inspect|lighteval) max_len=65536 ;;
    *) max_len=16384 ;;
esac
cd ..
RUSTC_BOOTSTRAP=1 exec nice cargo fuzz run -s none "$target" "fuzz/corpus/$target" -- \
    -dict="fuzz/dicts/$target.dict" -runs="$runs" -rss_limit_mb=2048 -timeout=10 \
    -max_len="$max_len" -print_final_stats=1 "$@"
