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

# The native engine's core (native/, Python module koncis_diag._native): built when a Rust
# toolchain and the Debian-packaged crates are here (scripts/install-test-deps.sh installs
# them as root); without them the package works on its pure-Python engine, and this says so.
# KONCIS_SKIP_NATIVE=1 skips the build.
if [ -n "${KONCIS_SKIP_NATIVE:-}" ]; then
    :
elif ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain (cargo): the native engine is not built (pure-Python engine)" >&2
elif [ ! -d /usr/share/cargo/registry/pyo3-0.17.3 ] || [ ! -d /usr/share/cargo/registry/regex-1.7.1 ]; then
    echo "setup: the Rust crates are not in /usr/share/cargo/registry (bash scripts/install-test-deps.sh" \
        "as root installs them): the native engine is not built" >&2
else
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.0,<2'
    mkdir -p native/python/koncis_diag  # maturin's python-source: only the extension goes in
    venv="$(cd "$VENV" && pwd)"
    wheels="$(mktemp -d)"
    if (cd native && "$venv/bin/maturin" build --release --quiet -i "$venv/bin/python" -o "$wheels") \
        >"$wheels/log" 2>&1; then
        "$VENV/bin/python" -m zipfile -e "$wheels"/koncis_diag_native-*.whl "$wheels/unpacked"
        cp "$wheels/unpacked/koncis_diag/"_native*.so koncis_diag/
        echo "setup: native engine built (KONCIS_DIAG_ENGINE=native selects it)" >&2
    else
        cat "$wheels/log" >&2
        echo "setup: the native engine did not build (output above): pure-Python engine" >&2
    fi
    rm -rf "$wheels"
fi
