"""Run ``gaussiansr_arch.train.main``/``gaussiansr_arch.test.main`` with the test hooks registered.

python tests/run_entry.py train -opt X.yml --root DIR [...]
torchrun --nproc_per_node=2 tests/run_entry.py train -opt X.yml --launcher pytorch --root DIR
"""

import sys

import train_helpers  # noqa: F401  (registers HookedArbitraryScaleSRModel; its dir is on sys.path)

if __name__ == '__main__':
    kind, argv = sys.argv[1], sys.argv[2:]
    if kind == 'train':
        from gaussiansr_arch.train import main
    elif kind == 'test':
        from gaussiansr_arch.test import main
    else:
        raise SystemExit(f'unknown entry {kind!r}: use train or test')
    main(argv)
