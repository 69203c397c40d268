#!/usr/bin/env bash
# One-shot device check (device-wide tests + speed/memory table); see benchmarks/gpu_check.py --help.
#   bash benchmarks/gpu_check.sh                        # one CUDA GPU, under 8 minutes
#   bash benchmarks/gpu_check.sh --device cpu --quick   # the same on the CPU, under 5 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
exec "$PY" benchmarks/gpu_check.py "$@"
