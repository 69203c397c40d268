"""Write the test option files in options/test/ (one per model x dataset, every scale).

Each method (every registered method descriptor, ``gaussiansr_arch.utils.methods``, with each of its
``test_encoders``) is tested under its own paper's evaluation protocol by default (its ``protocol``,
a name of ``gaussiansr_arch.data.protocol.PROTOCOLS``; the header of every generated file names it
and its source):

- ``liif`` (LIIF, and GaussianSR and MetaSR, whose tables are LIIF's): x2/x3/x4 read the
  MATLAB-bicubic LR of the set (``dataroot_lq``, ``filename_tmpl: '{}x<s>'``: shipped, or made by
  ``gaussiansr-prepare-benchmark`` for a set released without LR), x6 and up make it from the HR by
  PIL bicubic (LIIF's ``resize_fn``), x1.5/x2.4/x3.6 by MATLAB bicubic (no official protocol there:
  the kernel of the x2-x4 files); benchmarks Y with crop ceil(s), DIV2K-val RGB with ceil(s) + 6.
- ``gsasr``: MATLAB bicubic (BasicSR's ``imresize``) from the HR at every scale, Y channel
  everywhere, crop min(ceil(s), 8).
- ``continuoussr``: PIL bicubic from the HR at every scale; crop and channel as LIIF's.

Every dataset entry names its ``protocol`` (the dataset checks the entry against it) and carries its
own ``metrics`` (ArbitraryScaleSRModel uses a dataset's ``metrics`` in place of ``val.metrics``) and,
where the LR is made on the fly, ``lr_degradation``, all written from the protocol object.
``val.pbar`` is on: BasicSR prints a progress bar per test set.

``--protocol NAME`` writes every model's files under one protocol instead (file and run names end
in ``_<NAME>-protocol``), e.g. to test GaussianSR under GSASR's rules with ``gaussiansr-test``.

The output is deterministic (same script, same bytes), so ``--check`` can compare it.

Usage:
    python scripts/make_test_options.py           # rewrites options/test/test_*.yml
    python scripts/make_test_options.py --check   # exit 1 listing files that differ, are missing or stale
    python scripts/make_test_options.py --protocol gsasr --out /tmp/gsasr_options
"""

import argparse
import sys
import textwrap
from pathlib import Path

import yaml

from gaussiansr_arch.data.protocol import PROTOCOLS, dataset_family, get_protocol, metric_options
from gaussiansr_arch.utils.methods import methods

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / 'options' / 'test'
SCALES = [2, 3, 4, 1.5, 2.4, 3.6, 6, 8, 12, 18, 24, 30]

BENCHMARKS = {
    'Set5': 'datasets/benchmark/Set5',
    'Set14': 'datasets/benchmark/Set14',
    'B100': 'datasets/benchmark/B100',
    'Urban100': 'datasets/benchmark/Urban100',
    'Manga109': 'datasets/benchmark/Manga109',
    'General100': 'datasets/benchmark/General100',
}
DATASETS = [*BENCHMARKS, 'DIV2K-val']

# Display names of the encoders in file and run names.
ENCODER_NAMES = {'edsr-baseline': 'EDSR-baseline', 'rdn': 'RDN', 'swinir': 'SwinIR'}


def method_models() -> dict:
    """``{'<Arch>_<Encoder>': spec}`` of every registered method descriptor and each of its ``test_encoders``.

    The weights: the converted official file (``official_weights``: LIIF, GSASR) or a run trained
    here with ``options/train/train_<Arch>_<Encoder>_DIV2K.yml``; the protocol: the method's own.
    """
    out = {}
    for method in methods():
        for encoder in method.test_encoders:
            name = f'{method.arch}_{ENCODER_NAMES[encoder]}'
            weights = (
                f'experiments/pretrained_models/{name}_official.pth'
                if method.official_weights
                else f'experiments/{name}_DIV2K/models/net_g_latest.pth'
            )
            out[name] = {
                'network_g': {'type': method.arch, 'encoder': encoder},
                'weights': weights,
                'protocol': method.protocol,
            }
    return out


MODELS = method_models()


def scale_tag(scale: float) -> str:
    return f'x{scale:g}'


def dataset_entry(name: str, scale: float, protocol='liif') -> dict:
    proto = get_protocol(protocol)
    if name == 'DIV2K-val':
        gt, lq = 'datasets/DIV2K/DIV2K_valid_HR', f'datasets/DIV2K/DIV2K_valid_LR_bicubic/X{int(scale)}'
    else:
        root = BENCHMARKS[name]
        gt, lq = f'{root}/HR', f'{root}/LR_bicubic/X{int(scale)}'
    entry = {
        'name': f'{name}-{scale_tag(scale)}',
        'type': 'ArbitraryScalePairedDataset',
        'dataroot_gt': gt,
        'scale': scale,
        'protocol': proto.name,
        'io_backend': {'type': 'disk'},
        'metrics': metric_options(scale, dataset_family(name), proto),
    }
    if proto.reads_lr_files(scale):
        entry['dataroot_lq'] = lq
        entry['filename_tmpl'] = f'{{}}x{int(scale)}'
    else:
        entry['lr_degradation'] = proto.lr_degradation(scale)
    return entry


def _suffix(override) -> str:
    return f'_{override}-protocol' if override else ''


def test_options(model: str, dataset: str, override=None) -> dict:
    spec = MODELS[model]
    protocol = override or spec['protocol']
    return {
        'name': f'test_{model}_{dataset}{_suffix(override)}',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': {f'test_{i + 1}': dataset_entry(dataset, s, protocol) for i, s in enumerate(SCALES)},
        'network_g': spec['network_g'],
        'path': {'pretrain_network_g': spec['weights'], 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {
            'save_img': False,
            'suffix': None,
            'pbar': True,
            'chunk_size': 65536,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}},
        },
    }


def header(model: str, override=None) -> str:
    """The comment block of a file: generator, protocol (and whether it is the method's own), source, rules."""
    own = MODELS[model]['protocol']
    proto = get_protocol(override or own)
    whose = "this method's own" if proto.name == own else f"not this method's own ({own}): written with --protocol"
    tags = ', '.join(scale_tag(s) for s in SCALES)
    lines = [
        'Generated by scripts/make_test_options.py; edit that script, not this file.',
        f'Protocol: {proto.name}, {proto.title}; {whose}.',
        f'Source: {proto.source}.',
        f'{proto.describe()}.',
        f'Scales: {tags}. Each dataset entry carries the protocol in `metrics` and, where the LR is made '
        'from the HR on the fly, `lr_degradation` (matlab = MATLAB bicubic, pil = PIL bicubic as resize_fn).',
    ]
    if proto.name == 'liif':
        lines.append('x1.5, x2.4, x3.6 have no official protocol: MATLAB bicubic, the kernel of the x2-x4 LR files.')
    lines.append(f'Metrics: BasicSR calculate_psnr/ssim on 8-bit outputs; the official code: {proto.official_psnr}.')
    wrapped = [textwrap.fill(line, 110, initial_indent='# ', subsequent_indent='#   ') for line in lines]
    return '\n'.join(wrapped) + '\n'


def render_all(protocol=None) -> dict:
    """File name -> text of every test option file, in a fixed order (``protocol``: one for every model)."""
    return {
        f'test_{model}_{dataset}{_suffix(protocol)}.yml': header(model, protocol)
        + yaml.safe_dump(test_options(model, dataset, protocol), sort_keys=False)
        for model in MODELS
        for dataset in DATASETS
    }


def _shown(path: Path) -> str:
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def check(out_dir: Path, files: dict, pattern: str = 'test_*.yml') -> list:
    """Problems of ``out_dir`` against ``files``: differing, missing and stale (``pattern``) files."""
    problems = []
    for name, text in files.items():
        path = out_dir / name
        if not path.is_file():
            problems.append(f'missing: {_shown(path)}')
        elif path.read_bytes() != text.encode():
            problems.append(f'differs: {_shown(path)}')
    stale = [p for p in sorted(out_dir.glob(pattern)) if p.name not in files]
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
    parser.add_argument(
        '--protocol',
        choices=list(PROTOCOLS),
        default=None,
        help="every model under this protocol instead of its paper's own (files named *_<NAME>-protocol.yml)",
    )
    args = parser.parse_args(argv)
    files = render_all(args.protocol)
    if args.check:
        problems = check(args.out, files, f'test_*{_suffix(args.protocol)}.yml')
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
