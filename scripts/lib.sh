# Shared helpers for caplens' scripts. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WASM_BINDGEN_VERSION="0.2.130"   # must equal the wasm-bindgen crate version in Cargo.lock

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The Rust side of the build: the wasm target and a wasm-bindgen CLI of the exact version.
ensure_build_tools() {
    ensure_wasm_target
    if wasm_bindgen_missing; then
        install_wasm_bindgen
    fi
}

ensure_wasm_target() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        say "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}

wasm_bindgen_missing() {
    [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]
}

install_wasm_bindgen() {
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 minutes, once)"
    # Not --locked: its lock file names a crate version crates.io no longer serves.
    # --force: a binary removed by hand is still "installed" in cargo's records.
    cargo install --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
}
