"""Convert an official LIIF checkpoint to a BasicSR weights file (same as ``gaussiansr-convert-liif``).

python scripts/convert_liif.py edsr-baseline-liif.pth LIIF_EDSR-baseline.pth [--force] [--encoder-only]
"""

import sys

from gaussiansr_arch.tools.convert_liif import main

if __name__ == '__main__':
    sys.exit(main())
