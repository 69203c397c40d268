"""The official EDSR-baseline-LIIF checkpoint on Set5 / Set14 under LIIF's protocol, three ways.

    python benchmarks/published_liif.py [--shared ../shared] [--lr-root DIR] [--official-code DIR]
        [--sets Set5 Set14] [--scales 2 3 4 6 8 12] [--output benchmarks/results/published_liif]

1. **ours**: the checkpoint converted by ``gaussiansr-convert-liif`` and run by ``gaussiansr-test``
   with ``options/test/test_LIIF_EDSR-baseline_<set>.yml`` (kept to ``--scales``, pointed at the
   data): x2-x4 read the set's MATLAB-bicubic LR from ``--lr-root/<set>/LR_bicubic/X<s>`` (made by
   ``gaussiansr-prepare-benchmark`` into ``<output>/benchmark`` when no ``--lr-root`` is given),
   x6 and up make the LR from the HR with PIL bicubic (LIIF's ``resize_fn``). BasicSR's
   ``calculate_psnr``: the output rounded to 8 bits, Y channel, border crop = scale.
2. **official code** (only with ``--official-code``, a checkout of github.com/yinboc/liif, which is
   imported from there, never copied): its ``test.eval_psnr`` with its own datasets, wrappers and
   metric (float output, no rounding), on the same LR files at x2-x4 (``paired-image-folders``)
   and on its own PIL LR at x6 and up (``sr-implicit-downsampled``; checked to equal ours bit for
   bit). Also reported: BasicSR's metric on the official code's own outputs (rounded), which
   isolates the metric from the model.
3. **bicubic**: MATLAB bicubic upscaling of the same LR, BasicSR's metric; beside it, as a
   diagnostic of the published bicubic rows, the same outputs scored as MATLAB scripts do (Y
   rounded to integers; a single-channel HR, Set14's ``bridge``, on its grey values).

Writes ``<output>/results.json`` and ``<output>/tables.md`` (also printed), beside the published
figures (``PUBLISHED_*`` below, with their sources). CPU only; ``OMP_NUM_THREADS`` is respected.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import yaml

import gaussiansr_arch  # noqa: F401  (torchvision shim: must precede any basicsr import)

# isort: split
from gaussiansr_arch.data.protocol import crop_border, hr_crop_and_lr_size, hr_crop_for_lr, make_lr_uint8
from gaussiansr_arch.toolkit.comparison import bicubic_upscale
from gaussiansr_arch.tools.convert_liif import convert_file
from gaussiansr_arch.utils.image_io import read_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / 'shared'
DEFAULT_OUTPUT = REPO / 'benchmarks' / 'results' / 'published_liif'
SETS = ('Set5', 'Set14')
SCALES = (2, 3, 4, 6, 8, 12)
FILE_LR_SCALES = (2, 3, 4)  # read from the set's LR_bicubic/X<s>; the others: PIL from HR

# Published PSNR (dB), Y channel, crop = scale. Sources in docs/benchmarks.md ("Set5 / Set14 ...").
# EDSR-baseline-LIIF: empty on purpose. No published Set5/Set14 table could be read in the stored
# copies searched (LMF, A-LIIF, DIIF, HIIF, LTE, arXiv:2601.17723: only their opening pages are
# indexed; SRNO, CiaoSR, CLIT: no stored copy surfaced); nothing is filled from memory. Fill as
# {'Set5': {2: ..., ...}, 'Set14': {...}} with the paper and table number when one is read.
PUBLISHED_LIIF = {}
# Bicubic (MATLAB): the first row of e.g. EDSR (Lim et al., CVPRW 2017) Table 6 / RCAN Table 3.
PUBLISHED_BICUBIC = {
    'Set5': {2: 33.66, 3: 30.39, 4: 28.42},
    'Set14': {2: 30.24, 3: 27.55, 4: 26.00},
}


def lr_file_root(lr_root: Path, set_name: str, scale: int) -> Path:
    return lr_root / set_name / 'LR_bicubic' / f'X{scale}'


# ------------------------------------------------------------------------------ ours
def make_test_yml(set_name: str, scales, hr_root: Path, lr_root: Path, weights: Path, out: Path) -> Path:
    """The shipped LIIF test options of ``set_name``, kept to ``scales`` and pointed at the data."""
    opt = yaml.safe_load((REPO / 'options' / 'test' / f'test_LIIF_EDSR-baseline_{set_name}.yml').read_text())
    kept = {}
    for d in opt['datasets'].values():
        if float(d['scale']) not in [float(s) for s in scales]:
            continue
        d['dataroot_gt'] = str(hr_root / set_name / 'HR')
        if 'dataroot_lq' in d:
            d['dataroot_lq'] = str(lr_file_root(lr_root, set_name, int(d['scale'])))
        kept[f'test_{len(kept) + 1}'] = d
    opt['datasets'] = kept
    opt['num_gpu'] = 0
    opt['path']['pretrain_network_g'] = str(weights)
    path = out / f'test_LIIF_EDSR-baseline_{set_name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def parse_test_log(text: str) -> dict:
    """{dataset name: psnr} from gaussiansr-test's log ('Validation Set5-x2' then '# psnr: 37.9922')."""
    found = re.findall(r'Validation (\S+)\s*\n\s*# psnr: ([0-9.]+)', text)
    return {name: float(v) for name, v in found}


def run_ours(set_name, scales, hr_root, lr_root, weights, out) -> dict:
    yml = make_test_yml(set_name, scales, hr_root, lr_root, weights, out)
    cmd = ['gaussiansr-test', '-opt', str(yml), '--root', str(out / 'ours')]
    print('$', ' '.join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out / f'ours_{set_name}.log').write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f'gaussiansr-test failed ({proc.returncode}); see {out}/ours_{set_name}.log')
    psnr = parse_test_log(proc.stdout + proc.stderr)
    return {s: psnr[f'{set_name}-x{s}'] for s in scales}


# ------------------------------------------------------------------------------ bicubic
def psnr_y(sr_uint8_rgb: np.ndarray, hr_uint8_rgb: np.ndarray, scale: float) -> float:
    from basicsr.metrics import calculate_psnr

    return calculate_psnr(
        sr_uint8_rgb[..., ::-1], hr_uint8_rgb[..., ::-1], crop_border=crop_border(scale), test_y_channel=True
    )


def protocol_pair(hr_path: Path, set_name: str, scale: int, lr_root: Path):
    """(HR crop, LR) of one image, uint8 RGB, as the LIIF test options make them."""
    hr = read_image(str(hr_path))  # uint8 RGB (grey PNGs as 3 channels)
    if scale in FILE_LR_SCALES:
        lr = read_image(str(lr_file_root(lr_root, set_name, scale) / f'{hr_path.stem}x{scale}.png'))
        h, w = hr_crop_for_lr(lr.shape[:2], scale)
        return hr[:h, :w], lr
    (h, w), lr_size = hr_crop_and_lr_size(hr.shape[:2], scale)
    hr = hr[:h, :w]
    return hr, make_lr_uint8(hr, lr_size, 'pil')


def run_bicubic(set_name, scales, hr_root, lr_root, matlab_style: bool = False) -> dict:
    """Mean bicubic PSNR-Y per scale (``bicubic_upscale``, compare's baseline), scored as BasicSR's
    validator does or, with ``matlab_style``, as :func:`matlab_style_psnr` (a diagnostic)."""
    import cv2

    res = {}
    for s in scales:
        vals = []
        for hr_path in sorted((hr_root / set_name / 'HR').glob('*.png')):
            hr, lr = protocol_pair(hr_path, set_name, s, lr_root)
            up = bicubic_upscale(lr, hr.shape[:2])
            if matlab_style:
                grey = cv2.imread(str(hr_path), cv2.IMREAD_UNCHANGED).ndim == 2
                vals.append(matlab_style_psnr(up, hr, s, grey))
            else:
                vals.append(psnr_y(up, hr, s))
        res[s] = float(np.mean(vals))
    return res


def matlab_style_psnr(sr: np.ndarray, hr: np.ndarray, scale: int, grey: bool) -> float:
    """PSNR as the MATLAB scripts behind the published bicubic rows score it (a diagnostic):
    Y of ``rgb2ycbcr`` on uint8 images, rounded to integers; a single-channel HR on its grey values."""
    if grey:
        a, b = sr[..., 0].astype(np.float64), hr[..., 0].astype(np.float64)
    else:
        w = np.array([65.481, 128.553, 24.966]) / 255.0
        a, b = (np.round(16.0 + img.astype(np.float64) @ w) for img in (sr, hr))
    d = (a - b)[scale:-scale, scale:-scale]
    return float(10.0 * np.log10(255.0**2 / np.mean(d**2)))


# ------------------------------------------------------------------------------ official code
def import_official(code: Path):
    """Import the official LIIF code from a checkout, on the CPU (no file of it is changed)."""
    import torch

    sys.modules.setdefault('tensorboardX', types.SimpleNamespace(SummaryWriter=None))  # training-only import
    torch.Tensor.cuda = lambda self, *a, **k: self  # its test code moves every tensor to CUDA
    sys.path.insert(0, str(code))
    import datasets as liif_datasets
    import models as liif_models
    import test as liif_test
    import utils as liif_utils

    return liif_datasets, liif_models, liif_test, liif_utils


def run_official(code: Path, set_name, scales, hr_root, lr_root, checkpoint: Path) -> dict:
    """Official ``eval_psnr`` per scale: {'float': its figure, 'basicsr_rounded': ..., 'lr_equal': ...}."""
    import torch
    from torch.utils.data import DataLoader

    liif_datasets, liif_models, liif_test, liif_utils = import_official(code)
    model = liif_models.make(torch.load(str(checkpoint), map_location='cpu')['model'], load_sd=True)
    calc_psnr = liif_utils.calc_psnr
    res = {}
    for s in scales:
        hr_dir = str(hr_root / set_name / 'HR')
        if s in FILE_LR_SCALES:
            spec = {
                'name': 'paired-image-folders',
                'args': {'root_path_1': str(lr_file_root(lr_root, set_name, s)), 'root_path_2': hr_dir},
            }
            wrapper = {'name': 'sr-implicit-paired', 'args': {}}
        else:
            spec = {'name': 'image-folder', 'args': {'root_path': hr_dir}}
            wrapper = {'name': 'sr-implicit-downsampled', 'args': {'scale_min': s}}
        dataset = liif_datasets.make(wrapper, args={'dataset': liif_datasets.make(spec)})

        # the official LR equals the one our pipeline feeds the model, image for image
        lr_equal = True
        for i, hr_path in enumerate(sorted((hr_root / set_name / 'HR').glob('*.png'))):
            ours_hr, ours_lr = protocol_pair(hr_path, set_name, s, lr_root)
            theirs = (dataset[i]['inp'].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            lr_equal &= theirs.shape == ours_lr.shape and bool((theirs == ours_lr).all())

        rounded = []

        def recording_psnr(sr, hr, dataset=None, scale=1, rgb_range=1, _s=s, _rounded=rounded):
            # the official metric, unchanged; BasicSR's on the same output rounded to 8 bits beside it
            to_u8 = lambda t: (t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)  # noqa: E731
            _rounded.append(psnr_y(to_u8(sr), to_u8(hr), _s))
            return calc_psnr(sr, hr, dataset=dataset, scale=scale, rgb_range=rgb_range)

        liif_utils.calc_psnr = recording_psnr
        try:
            loader = DataLoader(dataset, batch_size=1, num_workers=0)
            norm = {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
            value = liif_test.eval_psnr(loader, model, data_norm=norm, eval_type=f'benchmark-{s}', eval_bsize=30000)
        finally:
            liif_utils.calc_psnr = calc_psnr
        res[s] = {'float': float(value), 'basicsr_rounded': float(np.mean(rounded)), 'lr_equal': lr_equal}
        print(f'official {set_name} x{s}: {value:.4f} (BasicSR rounded {np.mean(rounded):.4f})', flush=True)
    return res


# ------------------------------------------------------------------------------ tables
def fmt(v, digits=2):
    return '-' if v is None else f'{v:.{digits}f}'


def tables(results: dict) -> str:
    """Markdown tables of ``results`` (one per set), the published figures beside."""
    lines = []
    for set_name, r in results['sets'].items():
        keys = {*r.get('ours', {}), *r.get('official', {})}
        scales = sorted(int(k) for k in keys)
        official = r.get('official', {})
        rows = [
            ('LIIF, ours (`gaussiansr-test`)', r.get('ours', {})),
            ('LIIF, official code (its float PSNR)', {k: v['float'] for k, v in official.items()}),
            ('LIIF, official code, BasicSR metric', {k: v['basicsr_rounded'] for k, v in official.items()}),
            ('LIIF, published', PUBLISHED_LIIF.get(set_name, {})),
            ('bicubic, ours', r.get('bicubic', {})),
            ('bicubic, ours, MATLAB-style scoring (diagnostic)', r.get('bicubic_matlab_style', {})),
            ('bicubic, published', PUBLISHED_BICUBIC.get(set_name, {})),
        ]
        lines += [f'**{set_name}** (PSNR-Y, dB, crop = scale)', '']
        lines += ['| | ' + ' | '.join(f'x{s}' for s in scales) + ' |', '|---' * (len(scales) + 1) + '|']
        for label, d in rows:
            vals = [d.get(str(s), d.get(s)) for s in scales]
            if any(v is not None for v in vals):
                lines.append(f'| {label} | ' + ' | '.join(fmt(v) for v in vals) + ' |')
        both = [s for s in scales if str(s) in r.get('ours', {}) and str(s) in official]
        if both:
            d_float = [r['ours'][str(s)] - official[str(s)]['float'] for s in both]
            d_same = [r['ours'][str(s)] - official[str(s)]['basicsr_rounded'] for s in both]
            lines.append(
                '| ours - official: vs its float PSNR / same metric | '
                + ' | '.join(
                    f'{a:+.4f} / {b:+.4f}' if s in both else '-'
                    for s, a, b in zip(scales, *[iter_fill(scales, both, d) for d in (d_float, d_same)])
                )
                + ' |'
            )
        lr_ok = [s for s in both if official[str(s)].get('lr_equal')]
        if both:
            lines.append('')
            lines.append(f'Official LR identical to ours at: {", ".join(f"x{s}" for s in lr_ok) or "none"}.')
        lines.append('')
    return '\n'.join(lines)


def iter_fill(scales, present, values):
    """``values`` (one per scale in ``present``) spread over ``scales``, 0.0 where absent."""
    got = dict(zip(present, values))
    return [got.get(s, 0.0) for s in scales]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', type=Path, default=DEFAULT_SHARED)
    parser.add_argument('--lr-root', type=Path, help='root with <set>/LR_bicubic/X<s> (default: made in OUTPUT)')
    parser.add_argument('--official-code', type=Path, help='a checkout of github.com/yinboc/liif (optional)')
    parser.add_argument('--sets', nargs='+', default=list(SETS))
    parser.add_argument('--scales', nargs='+', type=int, default=list(SCALES))
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument('--skip-ours', action='store_true', help='reuse results.json for ours and bicubic')
    args = parser.parse_args(argv)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    hr_root = (args.shared / 'datasets' / 'benchmark').resolve()
    checkpoint = (args.shared / 'reference' / 'liif' / 'edsr-baseline-liif.pth').resolve()
    lr_root = args.lr_root.resolve() if args.lr_root else out / 'benchmark'
    if args.lr_root is None:
        cmd = ['gaussiansr-prepare-benchmark', '--root', str(hr_root), '--out', str(lr_root)]
        cmd += ['--datasets', *args.sets, '--scales', *[str(s) for s in FILE_LR_SCALES]]
        if not lr_root.is_dir():
            print('$', ' '.join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    weights = out / 'LIIF_EDSR-baseline_official.pth'
    if not weights.is_file():
        convert_file(str(checkpoint), str(weights))

    results_path = out / 'results.json'
    results = json.loads(results_path.read_text()) if results_path.is_file() else {'sets': {}}
    results.update(
        {
            'date': time.strftime('%Y-%m-%d'),
            'threads': os.environ.get('OMP_NUM_THREADS'),
            'lr_root': str(lr_root),
            'hr_root': str(hr_root),
        }
    )
    for set_name in args.sets:
        r = results['sets'].setdefault(set_name, {})
        if not args.skip_ours:
            t0 = time.time()
            ours = run_ours(set_name, args.scales, hr_root, lr_root, weights, out)
            r.setdefault('ours', {}).update({str(k): v for k, v in ours.items()})
            r['ours_seconds'] = round(time.time() - t0, 1)
            bicubic = run_bicubic(set_name, args.scales, hr_root, lr_root)
            r.setdefault('bicubic', {}).update({str(k): v for k, v in bicubic.items()})
            matlab = run_bicubic(set_name, args.scales, hr_root, lr_root, matlab_style=True)
            r.setdefault('bicubic_matlab_style', {}).update({str(k): v for k, v in matlab.items()})
        if args.official_code:
            t0 = time.time()
            off = run_official(args.official_code.resolve(), set_name, args.scales, hr_root, lr_root, checkpoint)
            r.setdefault('official', {}).update({str(k): v for k, v in off.items()})
            r['official_seconds'] = round(time.time() - t0, 1)
        results_path.write_text(json.dumps(results, indent=1))
    text = tables(results)
    (out / 'tables.md').write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
