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
# Headless Chromium for the browser tests of gaussiansr-compare's report.html (tests/test_compare_html.py):
# Debian's chromium + chromium-driver. Where apt-get is missing, we are not root or the install fails, this
# says so in one line and those tests skip (they say why). GAUSSIANSR_NO_CHROMIUM=1 skips the install.
if [ -z "${GAUSSIANSR_NO_CHROMIUM:-}" ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
            >/dev/null 2>&1 || echo 'setup_env: apt-get install chromium chromium-driver failed; browser tests will skip' >&2
    else
        echo 'setup_env: no apt-get as root here: chromium not installed; browser tests will skip' >&2
    fi
fi
