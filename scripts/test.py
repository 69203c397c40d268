"""Thin wrapper: ``python scripts/test.py -opt X.yml`` = ``gaussiansr-test -opt X.yml``."""

from gaussiansr_arch.test import main

if __name__ == '__main__':
    main()
