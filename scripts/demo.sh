#!/usr/bin/env bash
# The main job on the built-in demo: set up, then build a sample Jira server in a temporary
# folder and run the whole pipeline on it. The bundle lands in the current directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/koncis-diag" demo "$@"
