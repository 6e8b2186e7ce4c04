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

ensure_wasm_target
cd "$ROOT"


# Three jobs at once, so that a cold build keeps both cores busy (the app crate's type checking
# runs on one core for minutes): the wasm-bindgen CLI (when missing, in cargo install's own
# directory), the browser side (in its own target directory: a second cargo would wait for the
# first one's lock) and the server. Logs of the two background jobs are shown if they fail.
LOGS="$TARGET_DIR/build-logs"
mkdir -p "$LOGS"
bindgen_job=""
if wasm_bindgen_missing; then
    install_wasm_bindgen > "$LOGS/wasm-bindgen-cli.log" 2>&1 &
    bindgen_job=$!
fi
WASM_TARGET_DIR="$TARGET_DIR/wasm"
say "building the browser side (wasm, profile $WASM_PROFILE, in the background: $LOGS/wasm.log)"
CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo build -p caplens-app --lib \
    --target wasm32-unknown-unknown --no-default-features --features hydrate \
    --profile "$WASM_PROFILE" > "$LOGS/wasm.log" 2>&1 &
wasm_job=$!

say "building the server (profile $PROFILE)"
if ! cargo build -p caplens-server --bin caplens --profile "$PROFILE"; then
    kill "$wasm_job" ${bindgen_job:+"$bindgen_job"} 2>/dev/null || true
    die "the server did not build"
fi
wait "$wasm_job" || { tail -n 40 "$LOGS/wasm.log" >&2; die "the browser side did not build (log: $LOGS/wasm.log)"; }
if [ -n "$bindgen_job" ]; then
    wait "$bindgen_job" || { tail -n 40 "$LOGS/wasm-bindgen-cli.log" >&2; die "wasm-bindgen-cli did not install (log: $LOGS/wasm-bindgen-cli.log)"; }
fi

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
