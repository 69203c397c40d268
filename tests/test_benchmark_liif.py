"""The official EDSR-baseline-LIIF checkpoint on real Set5 x4 through our test pipeline.

Checks that ``gaussiansr-convert-liif`` + ``gaussiansr-test`` with the shipped LIIF test options
(``options/test/test_LIIF_EDSR-baseline_Set5.yml``, x4: MATLAB-bicubic LR made by
``gaussiansr-prepare-benchmark``) give the Set5 x4 PSNR that the official LIIF code
(github.com/yinboc/liif, ``test.eval_psnr``) gives on the same LR files. The official code is not
available at CI time (and is never copied into this project), so its figures are recorded here,
produced by::

    OMP_NUM_THREADS=1 python benchmarks/published_liif.py --lr-root <made by gaussiansr-prepare-benchmark> \\
        --official-code <checkout of github.com/yinboc/liif> --sets Set5 --scales 4

(docs/benchmarks.md, "Set5 / Set14 with the official LIIF weights"). Needs ``../shared`` (the
checkpoint and ``datasets/benchmark/Set5/HR``) and skips cleanly without it. ~30 s of CPU.
"""

import logging
import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared'
CHECKPOINT = SHARED / 'reference' / 'liif' / 'edsr-baseline-liif.pth'
SET5_HR = SHARED / 'datasets' / 'benchmark' / 'Set5' / 'HR'

# Set5 x4, the official code (commit 4c833f8) on the same LR files, CPU, 2026-12-05 (command above):
OFFICIAL_FLOAT_PSNR = 32.23593101501465  # its own metric: float output (clamped, not rounded), Y, shave 4
OFFICIAL_BASICSR_PSNR = 32.23279732241074  # BasicSR's calculate_psnr on the official outputs rounded to 8 bits


def _run_test_pipeline(opt_path: Path, root: Path) -> dict:
    from gaussiansr_arch.test import main as test_main

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    level = logger.level  # another test may have created the logger first: capture at INFO anyway
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        test_main(['-opt', str(opt_path), '--root', str(root)])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = '\n'.join(messages)
    return {name: float(v) for name, v in re.findall(r'Validation (\S+)\s*\n\s*# psnr: ([0-9.]+)', text)}


def test_official_liif_set5_x4_matches_official_code(tmp_path):
    if not CHECKPOINT.is_file() or not SET5_HR.is_dir():
        pytest.skip(f'{CHECKPOINT} or {SET5_HR} is absent')
    sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
    try:
        import published_liif
    finally:
        sys.path.remove(str(REPO_ROOT / 'benchmarks'))
    from gaussiansr_arch.tools import convert_liif, prepare_benchmark

    lr_root = tmp_path / 'benchmark'
    args = ['--root', str(SET5_HR.parents[1]), '--out', str(lr_root), '--datasets', 'Set5', '--scales', '4']
    assert prepare_benchmark.main(args) == 0
    weights = tmp_path / 'LIIF_EDSR-baseline_official.pth'
    assert convert_liif.main([str(CHECKPOINT), str(weights)]) == 0
    opt = published_liif.make_test_yml('Set5', [4], SET5_HR.parents[1], lr_root, weights, tmp_path)

    psnr = _run_test_pipeline(opt, tmp_path / 'root')['Set5-x4']
    # same metric on the official code's outputs: equal to the log's 4 decimals
    assert abs(psnr - OFFICIAL_BASICSR_PSNR) < 2e-4
    # the official code's own figure (float PSNR, no 8-bit rounding): within 0.01 dB
    assert abs(psnr - OFFICIAL_FLOAT_PSNR) < 0.01
    # and the set is the real Set5: bicubic on these LR files is the published 28.42 dB
    bicubic = published_liif.run_bicubic('Set5', [4], SET5_HR.parents[1], lr_root)[4]
    assert abs(bicubic - 28.42) < 0.02
