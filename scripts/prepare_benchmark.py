"""Thin wrapper: ``python scripts/prepare_benchmark.py ARGS`` = ``gaussiansr-prepare-benchmark ARGS``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.prepare_benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
