#!/usr/bin/env bash
# Command 2 of the README: set everything up on a fresh machine, lint, and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -q tests "$@"
