#!/usr/bin/env bash
# Create (or reuse) .venv and install gaussiansr_arch with everything it needs.
# basicsr 1.4.2 is an sdist whose build imports torch, so torch + torchvision go in first and
# basicsr is built against them without build isolation (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c 'import torch, torchvision' >/dev/null 2>&1; then
    pip install -q --upgrade pip wheel setuptools
    pip install -q torch torchvision
fi
if ! python -c 'import basicsr.utils' >/dev/null 2>&1 && ! pip show -q basicsr >/dev/null 2>&1; then
    pip install -q --no-build-isolation 'basicsr==1.4.2'
fi
pip install -q -e '.[test,onnx]'
