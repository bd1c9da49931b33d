#!/usr/bin/env bash
# Set up a development environment from scratch: a virtualenv in .venv with koncis-diag
# installed in editable mode plus the test and lint tools. Safe to run again.
# Used by scripts/demo.sh and scripts/test.sh (the two commands README.md gives).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
    echo "error: koncis-diag needs Python >= 3.9 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
