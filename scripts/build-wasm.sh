#!/usr/bin/env bash
# The browser side of the build: the wasm-bindgen CLI when missing, then the hydration wasm
# (app crate, feature hydrate). Usage: scripts/build-wasm.sh PROFILE TARGET_DIR
# scripts/build.sh runs it beside the server's build, at the lowest priority.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PROFILE="$1"
WASM_TARGET_DIR="$2"
ensure_build_tools
cd "$ROOT"
cargo build -p caplens-app --lib --target wasm32-unknown-unknown --no-default-features \
    --features hydrate --profile "$PROFILE" --target-dir "$WASM_TARGET_DIR"
