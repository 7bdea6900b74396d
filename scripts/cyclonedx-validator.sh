#!/usr/bin/env bash
# Print the path of a Python interpreter that has `cyclonedx-python-lib[json-validation]` (the
# CycloneDX project's own library), which the tests use to validate SBOMs independently of wasmzip.
#
# Usage: scripts/cyclonedx-validator.sh     (interpreter on stdout, notes on stderr)
#
# Installs cyclonedx-python-lib[json-validation]==${CYCLONEDX_LIB_VERSION:-11.12.0} into a private
# venv at ${CYCLONEDX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/cyclonedx-venv} once, and reuses
# it afterwards; the system Python is left alone.
set -euo pipefail

die() { echo "cyclonedx-validator.sh: error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
VERSION="${CYCLONEDX_LIB_VERSION:-11.12.0}"
VENV="${CYCLONEDX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/cyclonedx-venv}"
probe() { "$1" -c 'import cyclonedx.validation.json, jsonschema' 2>/dev/null; }

if ! [[ -x "$VENV/bin/python" ]] || ! probe "$VENV/bin/python"; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "cyclonedx-validator.sh: creating venv $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV (Debian: apt-get install python3-venv)"
    fi
    echo "cyclonedx-validator.sh: installing cyclonedx-python-lib[json-validation]==$VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cyclonedx-python-lib[json-validation]==$VERSION" >&2 || die "pip install cyclonedx-python-lib failed"
    probe "$VENV/bin/python" || die "cyclonedx-python-lib installed in $VENV but does not import"
fi
printf '%s\n' "$VENV/bin/python"
