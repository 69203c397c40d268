"""Write the test option files in options/test/ (one per model x dataset, every scale).

Each benchmark has its own evaluation protocol (design doc, section 7), so every test
dataset carries its own ``metrics`` (ArbitraryScaleSRModel uses a dataset's ``metrics`` in
place of ``val.metrics``), written by ``gaussiansr_arch.data.protocol.metric_options``:

- Set5, Set14, B100, Urban100, Manga109, General100: Y channel, crop border = ceil(scale).
- DIV2K-val (as in the LIIF/GaussianSR tables): RGB, crop border = ceil(scale) + 6.

LR images (the same decision is written at the top of every generated file):

- x2/x3/x4 read the MATLAB-bicubic LR of the set (``dataroot_lq``, ``filename_tmpl: '{}x<s>'``):
  shipped with the benchmark, or, for a set released without LR (General100 is HR only), made
  from the HR with the same kernel by ``gaussiansr-prepare-benchmark``.
- Every other scale crops the HR so that h_lr = floor(H/s) and makes the LR on the fly; the
  entry's ``lr_degradation`` says how. ``pil`` from x6 up: LIIF's own x6-x30 benchmark protocol
  (``resize_fn`` = PIL bicubic). ``matlab`` below x6 (x1.5, x2.4, x3.6): no official protocol,
  so the kernel of the shipped x2-x4 LR.

The output is deterministic (same script, same bytes), so ``--check`` can compare it.

Usage:
    python scripts/make_test_options.py           # rewrites options/test/test_*.yml
    python scripts/make_test_options.py --check   # exit 1 listing files that differ, are missing or stale
"""

import argparse
import sys
from pathlib import Path

import yaml

from gaussiansr_arch.data.protocol import metric_options

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / 'options' / 'test'
SCALES = [2, 3, 4, 1.5, 2.4, 3.6, 6, 8, 12, 18, 24, 30]
SHIPPED_LR_SCALES = (2, 3, 4)
PIL_FROM_SCALE = 6  # on-the-fly LR: PIL bicubic from here up (LIIF's x6-x30 protocol), MATLAB bicubic below

BENCHMARKS = {
    'Set5': 'datasets/benchmark/Set5',
    'Set14': 'datasets/benchmark/Set14',
    'B100': 'datasets/benchmark/B100',
    'Urban100': 'datasets/benchmark/Urban100',
    'Manga109': 'datasets/benchmark/Manga109',
    'General100': 'datasets/benchmark/General100',
}
DATASETS = [*BENCHMARKS, 'DIV2K-val']

MODELS = {
    'GaussianSR_EDSR-baseline': {
        'network_g': {'type': 'GaussianSR', 'encoder': 'edsr-baseline'},
        'weights': 'experiments/GaussianSR_EDSR-baseline_DIV2K/models/net_g_latest.pth',
    },
    'LIIF_EDSR-baseline': {
        'network_g': {'type': 'LIIF', 'encoder': 'edsr-baseline'},
        'weights': 'experiments/pretrained_models/LIIF_EDSR-baseline_official.pth',
    },
    # The official paper weights, converted by gaussiansr-convert-gsasr (docs/gsasr.md).
    'GSASR_EDSR-baseline': {
        'network_g': {'type': 'GSASR', 'encoder': 'edsr-baseline'},
        'weights': 'experiments/pretrained_models/GSASR_EDSR-baseline_official.pth',
    },
    # Trained here (options/train/train_ContinuousSR_EDSR-baseline_DIV2K.yml): no official EDSR-baseline weights.
    'ContinuousSR_EDSR-baseline': {
        'network_g': {'type': 'ContinuousSR', 'encoder': 'edsr-baseline'},
        'weights': 'experiments/ContinuousSR_EDSR-baseline_DIV2K/models/net_g_latest.pth',
    },
}


def scale_tag(scale: float) -> str:
    return f'x{scale:g}'


def lr_degradation(scale: float) -> str:
    """How an on-the-fly LR is made (scales without shipped LR)."""
    return 'pil' if scale >= PIL_FROM_SCALE else 'matlab'


def dataset_entry(name: str, scale: float) -> dict:
    if name == 'DIV2K-val':
        gt, lq = 'datasets/DIV2K/DIV2K_valid_HR', f'datasets/DIV2K/DIV2K_valid_LR_bicubic/X{int(scale)}'
        protocol = 'div2k'
    else:
        root = BENCHMARKS[name]
        gt, lq = f'{root}/HR', f'{root}/LR_bicubic/X{int(scale)}'
        protocol = 'benchmark'
    entry = {
        'name': f'{name}-{scale_tag(scale)}',
        'type': 'ArbitraryScalePairedDataset',
        'dataroot_gt': gt,
        'scale': scale,
        'io_backend': {'type': 'disk'},
        'metrics': metric_options(scale, protocol),
    }
    if scale in SHIPPED_LR_SCALES:
        entry['dataroot_lq'] = lq
        entry['filename_tmpl'] = f'{{}}x{int(scale)}'
    else:
        entry['lr_degradation'] = lr_degradation(scale)
    return entry


def test_options(model: str, dataset: str) -> dict:
    spec = MODELS[model]
    return {
        'name': f'test_{model}_{dataset}',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': {f'test_{i + 1}': dataset_entry(dataset, s) for i, s in enumerate(SCALES)},
        'network_g': spec['network_g'],
        'path': {'pretrain_network_g': spec['weights'], 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {
            'save_img': False,
            'suffix': None,
            'chunk_size': 65536,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}},
        },
    }


def header() -> str:
    def tags(scales):
        return ', '.join(scale_tag(s) for s in scales)

    fly = [s for s in SCALES if s not in SHIPPED_LR_SCALES]
    return (
        '# Generated by scripts/make_test_options.py; edit that script, not this file.\n'
        f'# Scales: {tags(SCALES)}. Each dataset entry carries its own protocol in `metrics`.\n'
        f'# LR: {tags(s for s in SCALES if s in SHIPPED_LR_SCALES)} read the MATLAB-bicubic LR of the set '
        '(shipped, or made by gaussiansr-prepare-benchmark);\n'
        '# the other scales make it from the HR on the fly as `lr_degradation` says:\n'
        f'# matlab for {tags(s for s in fly if lr_degradation(s) == "matlab")} '
        '(no official protocol; same kernel as the shipped LR),\n'
        f'# pil for {tags(s for s in fly if lr_degradation(s) == "pil")} '
        "(LIIF's x6-x30 protocol: resize_fn = PIL bicubic).\n"
    )


def render_all() -> dict:
    """File name -> text of every test option file, in a fixed order."""
    return {
        f'test_{model}_{dataset}.yml': header() + yaml.safe_dump(test_options(model, dataset), sort_keys=False)
        for model in MODELS
        for dataset in DATASETS
    }


def _shown(path: Path) -> str:
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def check(out_dir: Path, files: dict) -> list:
    """Problems of ``out_dir`` against ``files``: differing, missing and stale test_*.yml files."""
    problems = []
    for name, text in files.items():
        path = out_dir / name
        if not path.is_file():
            problems.append(f'missing: {_shown(path)}')
        elif path.read_bytes() != text.encode():
            problems.append(f'differs: {_shown(path)}')
    stale = [p for p in sorted(out_dir.glob('test_*.yml')) if p.name not in files]
    return problems + [f'not generated (stale?): {_shown(p)}' for p in stale]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Write (or --check) the test option files, one per model x dataset.')
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 listing files that differ from what would be written, '
        'are missing, or are test_*.yml files this script does not write',
    )
    parser.add_argument('--out', type=Path, default=OUT_DIR, help='output folder (default: options/test)')
    args = parser.parse_args(argv)
    files = render_all()
    if args.check:
        problems = check(args.out, files)
        for line in problems:
            print(line)
        if problems:
            print('run python scripts/make_test_options.py to rewrite them')
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_bytes(text.encode())
        print(_shown(args.out / name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
