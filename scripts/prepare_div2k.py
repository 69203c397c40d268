"""Thin wrapper: same as the `gaussiansr-prepare-div2k` console command (see --help)."""

import sys

from gaussiansr_arch.tools.prepare_div2k import main

if __name__ == '__main__':
    sys.exit(main())
