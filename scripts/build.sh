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

# The jobs run one after another: the build is bound by CPU work on 2 cores, and running them
# at once measured slower (docs/performance.md, "Build profiles").
ensure_build_tools
cd "$ROOT"

say "building the browser side (wasm, profile $WASM_PROFILE)"
cargo build -p caplens-app --lib --target wasm32-unknown-unknown --no-default-features \
    --features hydrate --profile "$WASM_PROFILE"

say "building the server (profile $PROFILE)"
cargo build -p caplens-server --bin caplens --profile "$PROFILE"

SITE="$TARGET_DIR/site"
PKG="$SITE/pkg"
mkdir -p "$PKG"
# Optimised builds drop the wasm's name and producers sections (14 MB -> 5 MB, 2.3 -> 1.4 MB
# gzipped): panics still print their message; debug builds keep the names for readable traces.
STRIP=()
[ "$WASM_OUT" = debug ] || STRIP=(--remove-name-section --remove-producers-section)
wasm-bindgen --target web --no-typescript "${STRIP[@]}" --out-dir "$PKG" --out-name caplens \
    "$TARGET_DIR/wasm32-unknown-unknown/$WASM_OUT/caplens_app.wasm"
# Leptos' HydrationScripts asks for /pkg/caplens.wasm (LEPTOS_OUTPUT_NAME is set at compile time).
mv -f "$PKG/caplens_bg.wasm" "$PKG/caplens.wasm"
cp style/caplens.css "$PKG/caplens.css"
cp -r public/. "$SITE/"
# Precompressed copies, served by the static file service to browsers that accept gzip.
for f in "$PKG/caplens.wasm" "$PKG/caplens.js" "$PKG/caplens.css"; do gzip -9 -k -f "$f"; done

say "built: $TARGET_DIR/$OUT/caplens with site $SITE ($(du -h "$PKG/caplens.wasm" | cut -f1) wasm)"
