"""PSNR of our LIIF (official checkpoint, converted) vs bicubic on the LIIF parity photos.

    python scripts/liif_parity_psnr.py [--shared ../shared] [--weights LIIF.pth] [--chunk-size N]

For every case of ``<shared>/reference/liif/outputs/cases.json``: HR = the scikit-image photo
cropped (top-left) to ``out_size``; LR = ``<case>_lr.png``; bicubic = MATLAB bicubic of the LR to
exactly ``out_size`` (basicsr's kernel, ``gaussiansr_arch.utils.image_io.imresize_to``). PSNR is
BasicSR's ``calculate_psnr`` on 8-bit images (clamped, rounded), Y channel, crop_border =
ceil(scale). Prints a Markdown table (also the official output's PSNR and our max |diff| to it).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import gaussiansr_arch
from gaussiansr_arch.data.protocol import crop_border, to_float, to_uint8
from gaussiansr_arch.tools.convert_liif import convert_file
from gaussiansr_arch.utils.image_io import imresize_to

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / 'shared'


def load_photo(expr: str) -> np.ndarray:
    """The photo of a case, from its ``"skimage.data.<name>()"`` description: uint8 HxWx3 RGB."""
    import skimage.data

    name = expr.removeprefix('skimage.data.').removesuffix('()')
    return getattr(skimage.data, name)()


def to_uint8_bgr(rgb: np.ndarray) -> np.ndarray:
    """Float RGB HxWx3 -> uint8 BGR, as basicsr's ``tensor2img`` (clamp to [0,1], x255, round)."""
    return to_uint8(rgb)[..., ::-1]


def psnr_y(sr: np.ndarray, hr_uint8_rgb: np.ndarray, scale: float) -> float:
    """BasicSR PSNR on the Y channel, crop_border = ceil(scale)."""
    from basicsr.metrics import calculate_psnr  # after gaussiansr_arch's torchvision shim

    return calculate_psnr(
        to_uint8_bgr(sr), hr_uint8_rgb[..., ::-1], crop_border=crop_border(scale), test_y_channel=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', type=Path, default=DEFAULT_SHARED)
    parser.add_argument(
        '--weights',
        type=Path,
        default=None,
        help='converted LIIF weights (default: convert the shared official checkpoint)',
    )
    parser.add_argument('--chunk-size', type=int, default=300000)
    args = parser.parse_args(argv)
    ref = args.shared / 'reference' / 'liif'
    cases = json.loads((ref / 'outputs' / 'cases.json').read_text())
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / 'liif.pth'
            convert_file(str(ref / 'edsr-baseline-liif.pth'), str(weights))
        net = gaussiansr_arch.load_model(str(weights))
    torch.set_grad_enabled(False)

    rows = []
    for case in cases:
        name, scale, out_size = case['case'], float(case['scale']), tuple(case['out_size'])
        hr = load_photo(case['image'])[: out_size[0], : out_size[1]]
        lr = cv2.imread(str(ref / 'outputs' / f'{name}_lr.png'), cv2.IMREAD_COLOR)[..., ::-1]
        lr = to_float(np.ascontiguousarray(lr))
        official = np.load(ref / 'outputs' / f'{name}_liif.npz')['sr']
        start = time.perf_counter()
        lq = torch.from_numpy(lr.transpose(2, 0, 1)).unsqueeze(0)
        ours = net.upscale(lq, size=out_size, chunk_size=args.chunk_size)[0].permute(1, 2, 0).numpy()
        seconds = time.perf_counter() - start
        bicubic = imresize_to(lr, out_size)
        diff = float(np.abs(np.clip(ours, 0, 1) - official).max())
        rows.append(
            f'| {name} | {scale:g} | {lr.shape[0]}x{lr.shape[1]} -> {out_size[0]}x{out_size[1]} '
            f'| {psnr_y(bicubic, hr, scale):.2f} | {psnr_y(official, hr, scale):.2f} '
            f'| {psnr_y(ours, hr, scale):.2f} | {diff:.1e} | {seconds:.1f} |'
        )
    print('| case | scale | LR -> SR | bicubic | LIIF official | LIIF ours | max abs diff | ours, s (CPU) |')
    print('|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
