#!/usr/bin/env bash
# The test suite from scratch: set up, lint (ruff, Python 3.9 target), then pytest.
# When a Python 3.9 interpreter is on the machine (the oldest we support: RHEL 8), the suite
# runs under it too, in its own virtualenv (.venv39); set KONCIS_SKIP_PY39=1 to skip that.
# That second run uses the pure-Python redaction engine (KONCIS_DIAG_ENGINE=python), so the
# path taken where Hyperscan has no wheel is tested as fully as the accelerated one.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real PostgreSQL and MariaDB servers for the database tests and the Rust crates of the native
# engine (Debian packages; root only), then the set-up, which builds the native engine when it can.
bash scripts/install-test-deps.sh
bash scripts/setup.sh
.venv/bin/ruff check koncis_diag tests bench
.venv/bin/ruff format --check koncis_diag tests bench
.venv/bin/mypy koncis_diag  # the type gate: 0 errors
.venv/bin/python -m pytest "$@"
if .venv/bin/python -c 'import koncis_diag._native' 2>/dev/null; then
    # The whole suite twice does not fit CI's time: the redaction tests again on the native
    # engine (the engine-equality tests compare it with the pure-Python one in both runs).
    echo "== the redaction tests on the native engine =="
    KONCIS_DIAG_ENGINE=native .venv/bin/python -m pytest -q "$@" tests/test_redaction_native.py \
        tests/test_redaction_detectors.py tests/test_redaction_rules.py tests/test_redaction_api.py \
        tests/test_redaction_stream.py tests/test_redaction_logformats.py tests/test_redaction_hosts.py
else
    echo "== the native engine is not built here: its tests are skipped (see scripts/setup.sh) =="
fi

if [ -z "${KONCIS_SKIP_PY39:-}" ]; then
    py39=""
    for candidate in python3.9 /root/.pyenv/versions/3.9*/bin/python3.9 /usr/bin/python3.9; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 9) else 1)' 2>/dev/null; then
            py39="$(command -v "$candidate")"
            break
        fi
    done
    if [ -n "$py39" ]; then
        echo "== the same tests under $("$py39" --version), pure-Python redaction engine =="
        PYTHON="$py39" VENV=.venv39 bash scripts/setup.sh
        KONCIS_DIAG_ENGINE=python .venv39/bin/python -m pytest -q "$@"
    else
        echo "== no Python 3.9 on this machine: the 3.9 run is skipped (ruff's py39 target still applies) =="
    fi
fi
