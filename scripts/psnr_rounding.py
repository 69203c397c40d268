"""What two protocol details are worth in dB: uint8 rounding of the output, and MATLAB vs PIL LR.

    python scripts/psnr_rounding.py [--shared ../shared] [--lr-root DIR] [--weights LIIF.pth]

Model: the official EDSR-baseline-LIIF (``<shared>/reference/liif``, converted by
``gaussiansr-convert-liif``). Images: Set5 HR (``<shared>/datasets/benchmark/Set5/HR``).

1. x2, x3, x4 with the set's MATLAB LR (``--lr-root``/X{s}/<name>x{s}.png, as
   ``gaussiansr-prepare-benchmark`` writes; made here by MATLAB bicubic when absent), HR cropped
   to LR x s, Y channel, crop = scale. Three PSNRs of the same output:
   * ``uint8``: BasicSR's ``calculate_psnr`` on the output clamped and rounded to 8 bits (what
     ``gaussiansr-test`` reports: BasicSR's ``tensor2img`` rounds);
   * ``float``: the same function on the clamped output x255, not rounded;
   * ``LIIF``: LIIF's ``calc_psnr`` as its paper's tables use it, written out here: the float
     RGB difference in [0, 1] projected on (65.738, 129.057, 25.064) / 256, ``scale`` pixels
     shaved, -10 log10(MSE).
2. x1.5, x2.4, x3.6 (LR made from HR on the fly): MATLAB bicubic (our test options) vs PIL
   bicubic (LIIF's ``resize_fn``, which the GaussianSR authors' code uses), uint8 PSNR-Y,
   crop = ceil(scale), for LIIF and for bicubic upsampling of the same LR.

Prints Markdown tables (per-set means of per-image PSNR, as BasicSR and LIIF average).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import gaussiansr_arch
from gaussiansr_arch.data.protocol import crop_border, hr_crop_and_lr_size, make_lr, to_float, to_uint8
from gaussiansr_arch.tools.convert_liif import convert_file
from gaussiansr_arch.utils.image_io import imresize_to

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
LIIF_Y = np.array([65.738, 129.057, 25.064]) / 256  # LIIF's calc_psnr, on RGB in [0, 1]


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'error: cannot read {path}')
    return np.ascontiguousarray(img[..., ::-1])


def basicsr_psnr_y(sr255: np.ndarray, hr_uint8: np.ndarray, border: int) -> float:
    """BasicSR's calculate_psnr, Y channel; ``sr255`` RGB in [0, 255], uint8 or float."""
    from basicsr.metrics import calculate_psnr  # after gaussiansr_arch's torchvision shim

    return calculate_psnr(sr255[..., ::-1], hr_uint8[..., ::-1], crop_border=border, test_y_channel=True)


def liif_psnr_y(sr: np.ndarray, hr_uint8: np.ndarray, shave: int) -> float:
    """LIIF's benchmark PSNR: float RGB difference -> Y weights (no offset), shaved, -10 log10(MSE)."""
    diff = (sr.astype(np.float64) - hr_uint8.astype(np.float64) / 255) @ LIIF_Y
    valid = diff[shave:-shave, shave:-shave]
    return float(-10 * np.log10(np.mean(valid**2)))


def upscale(net, lr: np.ndarray, size: tuple) -> np.ndarray:
    lq = torch.from_numpy(lr.transpose(2, 0, 1).copy()).unsqueeze(0)
    out = net.upscale(lq, size=size, chunk_size=65536)[0].permute(1, 2, 0).numpy()
    return np.clip(out, 0, 1)


def table(header: list, rows: list) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', type=Path, default=DEFAULT_SHARED)
    parser.add_argument('--hr', type=Path, default=None, help='Set5 HR folder (default <shared>/datasets/...)')
    parser.add_argument('--lr-root', type=Path, default=None, help='folder with X2/X3/X4 MATLAB LR files')
    parser.add_argument('--weights', type=Path, default=None, help='converted LIIF weights')
    parser.add_argument('--scales', type=float, nargs='+', default=[2, 3, 4])
    parser.add_argument('--fractional', type=float, nargs='+', default=[1.5, 2.4, 3.6])
    args = parser.parse_args(argv)
    hr_dir = args.hr or args.shared / 'datasets' / 'benchmark' / 'Set5' / 'HR'
    names = sorted(p.stem for p in hr_dir.glob('*.png'))
    if not names:
        raise SystemExit(f'error: no PNG in {hr_dir}')
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / 'liif.pth'
            convert_file(str(args.shared / 'reference' / 'liif' / 'edsr-baseline-liif.pth'), str(weights))
        net = gaussiansr_arch.load_model(str(weights))
    torch.set_grad_enabled(False)
    start = time.perf_counter()

    rows = []
    for s in args.scales:
        s_int = int(s)
        per = []  # (uint8, float, liif, lr_from_file)
        for name in names:
            hr = read_rgb(hr_dir / f'{name}.png')
            (hh, hw), lr_size = hr_crop_and_lr_size(hr.shape[:2], s_int)
            hr = hr[:hh, :hw]
            lr_path = args.lr_root / f'X{s_int}' / f'{name}x{s_int}.png' if args.lr_root else None
            if lr_path is not None and lr_path.is_file():
                lr, from_file = to_float(read_rgb(lr_path)), True
                assert lr.shape[:2] == lr_size, (lr_path, lr.shape, lr_size)
            else:
                lr, from_file = make_lr(to_float(hr), lr_size, 'matlab'), False
            sr = upscale(net, lr, (hh, hw))
            per.append(
                (
                    basicsr_psnr_y(to_uint8(sr), hr, s_int),
                    basicsr_psnr_y(sr * 255.0, hr, s_int),
                    liif_psnr_y(sr, hr, s_int),
                    from_file,
                )
            )
        u, f, li = (float(np.mean([p[i] for p in per])) for i in range(3))
        diffs = [p[1] - p[0] for p in per]
        source = 'files' if all(p[3] for p in per) else 'made here' if not any(p[3] for p in per) else 'mixed'
        rows.append(
            [
                f'x{s_int}',
                source,
                f'{u:.4f}',
                f'{f:.4f}',
                f'{li:.4f}',
                f'{f - u:+.4f}',
                f'{min(diffs):+.4f} .. {max(diffs):+.4f}',
            ]
        )
    print(f'Set5 ({len(names)} images), official EDSR-baseline-LIIF, MATLAB LR, PSNR-Y dB, crop = scale')
    print(
        table(
            [
                'scale',
                'LR',
                'uint8 (BasicSR)',
                'float (BasicSR formula)',
                "float (LIIF's calc_psnr)",
                'float - uint8',
                'per image',
            ],
            rows,
        )
    )

    rows = []
    for s in args.fractional:
        res = {}
        for deg in ('matlab', 'pil'):
            liif, bic = [], []
            for name in names:
                hr = read_rgb(hr_dir / f'{name}.png')
                (hh, hw), lr_size = hr_crop_and_lr_size(hr.shape[:2], s)
                hr = hr[:hh, :hw]
                lr = make_lr(to_float(hr), lr_size, deg)
                border = crop_border(s)
                liif.append(basicsr_psnr_y(to_uint8(upscale(net, lr, (hh, hw))), hr, border))
                bic.append(basicsr_psnr_y(to_uint8(imresize_to(lr, (hh, hw))), hr, border))
            res[deg] = (float(np.mean(liif)), float(np.mean(bic)))
        (lm, bm), (lp, bp) = res['matlab'], res['pil']
        rows.append(
            [f'x{s:g}', f'{lm:.2f}', f'{lp:.2f}', f'{lp - lm:+.2f}', f'{bm:.2f}', f'{bp:.2f}', f'{bp - bm:+.2f}']
        )
    print()
    print('Set5, LR made from HR at non-integer scales: MATLAB vs PIL bicubic, uint8 PSNR-Y dB, crop = ceil(scale)')
    print(
        table(
            [
                'scale',
                'LIIF, MATLAB LR',
                'LIIF, PIL LR',
                'PIL - MATLAB',
                'bicubic, MATLAB LR',
                'bicubic, PIL LR',
                'PIL - MATLAB',
            ],
            rows,
        )
    )
    print(f'\n({time.perf_counter() - start:.0f} s, torch {torch.__version__}, {torch.get_num_threads()} thread(s))')
    return 0


if __name__ == '__main__':
    sys.exit(main())
