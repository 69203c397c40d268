#!/usr/bin/env bash
# Command 1 of the README: set everything up and run the embedded demo end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
gaussiansr-demo "$@"
