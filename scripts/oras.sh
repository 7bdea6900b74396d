#!/usr/bin/env bash
# Print the path of a Python interpreter that has `oras` (the ORAS project's Python library), which
# the registry tests use to pull a pushed package's `application/wasm` layer as standard OCI tooling
# does, independently of wasmzip.
#
# Usage: scripts/oras.sh     (interpreter on stdout, notes on stderr)
#
# Installs oras==${ORAS_PY_VERSION:-0.2.43} into a private venv at
# ${ORAS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/oras-venv} once, and reuses it afterwards; the
# system Python is left alone.
set -euo pipefail

die() { echo "oras.sh: error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
VERSION="${ORAS_PY_VERSION:-0.2.43}"
VENV="${ORAS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/oras-venv}"
probe() { "$1" -c "import oras.client, oras.version, sys; sys.exit(oras.version.__version__ != '$VERSION')" 2>/dev/null; }

if ! [[ -x "$VENV/bin/python" ]] || ! probe "$VENV/bin/python"; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "oras.sh: creating venv $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV (Debian: apt-get install python3-venv)"
    fi
    echo "oras.sh: installing oras==$VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "oras==$VERSION" >&2 || die "pip install oras failed"
    probe "$VENV/bin/python" || die "oras installed in $VENV but does not import"
fi
printf '%s\n' "$VENV/bin/python"
