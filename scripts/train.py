"""Thin wrapper: ``python scripts/train.py ARGS`` = ``gaussiansr-train ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
