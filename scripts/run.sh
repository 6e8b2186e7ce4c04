#!/usr/bin/env bash
# The one command to try caplens: installs the build tools it lacks, builds (release), and
# starts caplens on the embedded default — SQLite at ./data/caplens.db with the demo experiment,
# and the embedded model (SmolLM2-135M-Instruct, fetched once by scripts/fetch-model.sh) for
# evaluation runs.
# Extra arguments go to `caplens serve` (e.g. --addr 0.0.0.0:8080).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/build.sh" --release
say "the embedded model for evaluation runs"
CAPLENS_MODEL="${CAPLENS_MODEL:-$("$ROOT/scripts/fetch-model.sh")}"
export CAPLENS_MODEL
say "starting caplens (Ctrl-C to stop)"
exec "$TARGET_DIR/release/caplens" serve --site-root "$TARGET_DIR/site" "$@"
