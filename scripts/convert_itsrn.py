"""Thin wrapper: ``python scripts/convert_itsrn.py ARGS`` = ``gaussiansr-convert-itsrn ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.convert_itsrn import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
