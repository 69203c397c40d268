"""Thin wrapper: ``python scripts/convert_aliif.py ARGS`` = ``gaussiansr-convert-aliif ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.convert_aliif import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
