"""Thin wrapper: ``python scripts/prepare_div2k.py ARGS`` = ``gaussiansr-prepare-div2k ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.prepare_div2k import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
