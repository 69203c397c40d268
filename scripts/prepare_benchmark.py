"""Thin wrapper: same as the `gaussiansr-prepare-benchmark` console command (see --help)."""

import sys

from gaussiansr_arch.tools.prepare_benchmark import main

if __name__ == '__main__':
    sys.exit(main())
