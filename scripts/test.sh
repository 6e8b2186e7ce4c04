#!/usr/bin/env bash
# The one command that runs every test of caplens:
#   1. installs what the tests need and is missing (wasm target, wasm-bindgen-cli, Chromium,
#      playwright-core, oidc-provider, the embedded model via scripts/fetch-model.sh);
#   2. the gates: `cargo fmt --check` and `cargo clippy --workspace --all-targets -D warnings`;
#      then builds the site and the server (debug);
#   3. cargo test for the whole workspace, with the storage/API tests against SQLite and
#      PostgreSQL (a fresh schema per test in CAPLENS_TEST_POSTGRES_URL, default
#      postgres://postgres@127.0.0.1:5432/test);
#   3b. the object-storage tests against moto's S3 server (from PyPI, started here on a free
#      loopback port; set CAPLENS_TEST_S3_URL= to skip them, or to an s3:// URL of your own);
#   4. the real clients (the `openai` package, lm-eval, Inspect AI, from PyPI into a venv under
#      ~/.cache/caplens) against `caplens engine serve`, and caplens importing the logs they wrote
#      (tests/real-clients/run.sh);
#   5. the end-to-end tests in headless Chromium against a real `caplens serve`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_build_tools
if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium for the browser tests"
    command -v apt-get >/dev/null || die "no /usr/bin/chromium and no apt-get: install Chromium and set CHROMIUM=/path/to/chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
    say "installing oidc-provider (the certified OpenID provider the sign-in tests run against)"
    (cd tests/oidc && npm ci --no-audit --no-fund --silent)
fi
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
    say "installing playwright-core (the browser itself is Debian's chromium)"
    (cd tests/e2e && npm install --no-audit --no-fund --silent)
fi

export CAPLENS_TEST_POSTGRES_URL="${CAPLENS_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
if [ -n "$CAPLENS_TEST_POSTGRES_URL" ] && command -v pg_isready >/dev/null; then
    pg_isready -q -d "$CAPLENS_TEST_POSTGRES_URL" || die "PostgreSQL at $CAPLENS_TEST_POSTGRES_URL is not ready (set CAPLENS_TEST_POSTGRES_URL= to skip the PostgreSQL variants)"
fi

# An S3-compatible server for the object-storage tests (blob-store contract, sweeper, replicas):
# moto's standalone server from PyPI, on a free loopback port, one bucket; stopped on exit.
start_s3_server() {
    local venv="${CAPLENS_MOTO_VENV:-$HOME/.cache/caplens/moto-venv}"
    if [ ! -x "$venv/bin/moto_server" ]; then
        say "installing moto[server] (an S3-compatible server, from PyPI) into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
    fi
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    S3_LOG="$(mktemp -t caplens-moto.XXXXXX)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$S3_LOG" 2>&1 &
    S3_PID=$!
    trap 'kill "$S3_PID" 2>/dev/null || true' EXIT
    # Wait for it, then create the bucket (plain HTTP: moto takes unsigned requests).
    python3 - "$port" <<'PY' || die "moto's S3 server did not start (log: $S3_LOG)"
import sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(150):
    try:
        urllib.request.urlopen(base + "/", timeout=2)
        break
    except Exception:
        time.sleep(0.2)
urllib.request.urlopen(urllib.request.Request(base + "/caplens-test", method="PUT"), timeout=5)
PY
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
    export CAPLENS_TEST_S3_URL="s3://caplens-test/run-$$"
    say "S3 server (moto) at $AWS_ENDPOINT_URL, bucket caplens-test"
}
if [ -z "${CAPLENS_TEST_S3_URL+set}" ]; then
    start_s3_server
fi

say "the embedded model for evaluation runs"
CAPLENS_MODEL="${CAPLENS_MODEL:-$("$ROOT/scripts/fetch-model.sh")}"
export CAPLENS_MODEL

say "gates: cargo fmt --check, cargo clippy -D warnings (workspace, all targets)"
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
cargo fmt --all --check || die "cargo fmt --check: run \`cargo fmt --all\` and commit the result"
cargo clippy --workspace --all-targets -- -D warnings || die "clippy found warnings (above)"

"$ROOT/scripts/build.sh"

say "cargo test (workspace; storage tests on SQLite and PostgreSQL)"
cargo test --workspace

say "real clients (openai, lm-eval, Inspect) against caplens engine serve; caplens imports their logs"
tests/real-clients/run.sh "$TARGET_DIR/debug/caplens"

say "browser tests (headless Chromium)"
(cd tests/e2e && CARGO_TARGET_DIR="$TARGET_DIR" npm test --silent)

say "all tests passed"
