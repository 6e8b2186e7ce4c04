#!/usr/bin/env bash
# Builds caplens: the hydration wasm (app crate, feature hydrate), the site assets, and the
# `caplens` server binary (feature ssr). Usage: scripts/build.sh [--release | --dist]
#   (none)     debug, for the tests
#   --release  optimised, parallel codegen, no LTO: what scripts/run.sh starts
#   --dist     optimised with one codegen unit and thin LTO: deployment builds (docs/deploy.md)
# Output: $TARGET_DIR/site/{pkg/caplens.js,pkg/caplens.wasm,pkg/caplens.css,favicon.ico},
#         $TARGET_DIR/{debug|release|dist}/caplens
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE=dev; WASM_PROFILE=dev; OUT=debug; WASM_OUT=debug
case "${1:-}" in
    --release) PROFILE=release; WASM_PROFILE=wasm-release; OUT=release; WASM_OUT=wasm-release ;;
    --dist) PROFILE=dist; WASM_PROFILE=wasm-release; OUT=dist; WASM_OUT=wasm-release ;;
    "") ;;
    *) die "unknown option $1 (use --release or --dist)" ;;
esac

# The server build is the long one, and for minutes of it (its last crates: caplens-app, then
# caplens-server, then the binary) one of the two cores is idle. So the browser side -- the
# wasm-bindgen CLI when missing, then the wasm -- is built beside it at the lowest priority
# (nice 19): it takes the idle core and yields it whenever the server's build wants both. The
# wasm has a target directory of its own ($TARGET_DIR/wasm), as cargo locks a target directory
# per build. Measured: docs/performance.md, "Build profiles".
ensure_wasm_target
cd "$ROOT"
WASM_TARGET_DIR="$TARGET_DIR/wasm"
WASM_LOG="$(mktemp "${TMPDIR:-/tmp}/caplens-wasm-build.XXXXXX")"
say "building the browser side (wasm, profile $WASM_PROFILE) beside the server: log in $WASM_LOG"
nice -n 19 "$ROOT/scripts/build-wasm.sh" "$WASM_PROFILE" "$WASM_TARGET_DIR" >"$WASM_LOG" 2>&1 &
WASM_PID=$!
trap 'pkill -P $WASM_PID 2>/dev/null; kill $WASM_PID 2>/dev/null || true' EXIT

say "building the server (profile $PROFILE)"
cargo build -p caplens-server --bin caplens --profile "$PROFILE"

say "waiting for the browser side"
if ! wait "$WASM_PID"; then
    cat "$WASM_LOG" >&2
    die "the browser side (wasm) failed to build (log above, also in $WASM_LOG)"
fi
trap - EXIT
tail -n 1 "$WASM_LOG" >&2
rm -f "$WASM_LOG"

SITE="$TARGET_DIR/site"
PKG="$SITE/pkg"
mkdir -p "$PKG"
# Optimised builds drop the wasm's name and producers sections (14 MB -> 5 MB, 2.3 -> 1.4 MB
# gzipped): panics still print their message; debug builds keep the names for readable traces.
STRIP=()
[ "$WASM_OUT" = debug ] || STRIP=(--remove-name-section --remove-producers-section)
wasm-bindgen --target web --no-typescript "${STRIP[@]}" --out-dir "$PKG" --out-name caplens \
    "$WASM_TARGET_DIR/wasm32-unknown-unknown/$WASM_OUT/caplens_app.wasm"
# Leptos' HydrationScripts asks for /pkg/caplens.wasm (LEPTOS_OUTPUT_NAME is set at compile time).
mv -f "$PKG/caplens_bg.wasm" "$PKG/caplens.wasm"
cp style/caplens.css "$PKG/caplens.css"
cp -r public/. "$SITE/"
# Precompressed copies, served by the static file service to browsers that accept gzip.
for f in "$PKG/caplens.wasm" "$PKG/caplens.js" "$PKG/caplens.css"; do gzip -9 -k -f "$f"; done

say "built: $TARGET_DIR/$OUT/caplens with site $SITE ($(du -h "$PKG/caplens.wasm" | cut -f1) wasm)"
