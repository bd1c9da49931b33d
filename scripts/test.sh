#!/usr/bin/env bash
# The test suite from scratch: set up, lint (ruff, Python 3.9 target), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real PostgreSQL and MariaDB servers for the database tests (Debian packages; root only).
bash scripts/install-test-deps.sh
.venv/bin/ruff check koncis_diag tests bench
.venv/bin/ruff format --check koncis_diag tests bench
.venv/bin/python -m pytest "$@"
