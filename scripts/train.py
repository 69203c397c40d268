"""Thin wrapper: ``python scripts/train.py -opt X.yml`` = ``gaussiansr-train -opt X.yml``."""

from gaussiansr_arch.train import main

if __name__ == '__main__':
    main()
