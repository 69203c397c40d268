"""Thin wrapper: ``python scripts/convert_lte.py ARGS`` = ``gaussiansr-convert-lte ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.convert_lte import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
