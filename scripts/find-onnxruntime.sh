#!/usr/bin/env bash
# Print the absolute path of the ONNX Runtime shared library
# (.../site-packages/onnxruntime/capi/libonnxruntime.so.X.Y.Z) shipped in the
# `onnxruntime` PyPI wheel, e.g. for ORT_DYLIB_PATH.
#
# Usage: scripts/find-onnxruntime.sh        (path on stdout, notes on stderr)
#
# Uses $PYTHON (default python3) if it can already import onnxruntime (and, if
# ORT_VERSION is set, it is that version).  Otherwise installs
# onnxruntime==${ORT_VERSION:-1.32.0} into a private venv at
# ${ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/ort-venv} (created once,
# reused afterwards) so the system Python is left alone.
set -euo pipefail

die() { echo "find-onnxruntime.sh: error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
DEFAULT_ORT_VERSION="1.32.0"
ORT_VENV="${ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/ort-venv}"

# Prints "VERSION<TAB>LIBPATH" for the given interpreter, or fails.
probe() {
    "$1" - <<'PY' 2>/dev/null
import glob, os, sys
import onnxruntime
capi = os.path.join(os.path.dirname(os.path.abspath(onnxruntime.__file__)), "capi")
libs = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.*")) +
              glob.glob(os.path.join(capi, "libonnxruntime.*.dylib")) +
              glob.glob(os.path.join(capi, "onnxruntime.dll")))
if not libs:
    sys.exit(1)
print(f"{onnxruntime.__version__}\t{libs[-1]}")
PY
}

found=""
for py in "$PYTHON" "$ORT_VENV/bin/python"; do
    command -v "$py" >/dev/null 2>&1 || [[ -x "$py" ]] || continue
    if out="$(probe "$py")"; then
        version="${out%%$'\t'*}"
        if [[ -z "${ORT_VERSION:-}" || "$version" == "$ORT_VERSION" ]]; then
            found="$out"
            break
        fi
    fi
done

if [[ -z "$found" ]]; then
    want="${ORT_VERSION:-$DEFAULT_ORT_VERSION}"
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if [[ ! -x "$ORT_VENV/bin/python" ]]; then
        echo "find-onnxruntime.sh: creating venv $ORT_VENV" >&2
        mkdir -p "$(dirname "$ORT_VENV")"
        "$PYTHON" -m venv "$ORT_VENV" \
            || die "could not create venv $ORT_VENV (Debian: apt-get install python3-venv)"
    fi
    echo "find-onnxruntime.sh: installing onnxruntime==$want into $ORT_VENV" >&2
    "$ORT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "onnxruntime==$want" >&2 || die "pip install onnxruntime==$want failed"
    found="$(probe "$ORT_VENV/bin/python")" \
        || die "onnxruntime installed in $ORT_VENV but no libonnxruntime shared library found"
fi

echo "find-onnxruntime.sh: onnxruntime ${found%%$'\t'*}" >&2
printf '%s\n' "${found#*$'\t'}"
