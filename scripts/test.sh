#!/usr/bin/env bash
# The test suite from scratch: set up, lint (ruff, Python 3.9 target), then pytest.
# When a Python 3.9 interpreter is on the machine (the oldest we support: RHEL 8), the suite
# runs under it too, in its own virtualenv (.venv39); set KONCIS_SKIP_PY39=1 to skip that.
# That second run uses the pure-Python redaction engine (KONCIS_DIAG_ENGINE=python), so the
# path taken where Hyperscan has no wheel is tested as fully as the accelerated one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real PostgreSQL and MariaDB servers for the database tests (Debian packages; root only).
bash scripts/install-test-deps.sh
.venv/bin/ruff check koncis_diag tests bench
.venv/bin/ruff format --check koncis_diag tests bench
.venv/bin/mypy koncis_diag  # the type gate: 0 errors
.venv/bin/python -m pytest "$@"

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
