"""The evaluation protocol, written once (the role of BasicSR's ``data_util.py``).

Everything that decides which LR/HR pair an image gives at a scale, how it is stored and how it
is scored lives here, and the datasets, the tools (compare, prepare-benchmark, the LMDB builders,
kernel-bank), the demo, ``scripts/make_test_options.py`` and the benchmarks call it:

* sizes: the LR of an HR image ``H x W`` at scale ``s`` is ``floor(H / s) x floor(W / s)``
  (:func:`lr_size_for`), the HR is cropped (top-left) to ``round(h_lr * s) x round(w_lr * s)``
  (:func:`hr_crop_and_lr_size`), as in LIIF's and GaussianSR's evaluation; an LR file fits an HR
  file when its size is exactly that LR size (:func:`lr_size_matches`);
* LR generation (:func:`make_lr`, :data:`LR_DEGRADATIONS`): MATLAB's antialiased bicubic
  ``imresize`` rounded to 8 bits (the DIV2K / benchmark LR files), or LIIF's ``resize_fn``
  (Pillow bicubic of the 8-bit-truncated image);
* 8-bit quantisation (:func:`to_uint8`, :func:`quantize`, :func:`to_float`): ``clip(round(x * 255))``,
  what a saved PNG holds and what BasicSR's ``tensor2img`` computes;
* metrics (:func:`crop_border`, :func:`metric_options`, :data:`EVAL_PROTOCOLS`): the benchmarks
  (Set5, Set14, B100, Urban100, Manga109, General100) are scored on the Y channel with a crop
  border of ``ceil(s)``, DIV2K-val on RGB with ``ceil(s) + 6``.
"""

import math

import numpy as np

from gaussiansr_arch.archs.coordinates import check_scale
from gaussiansr_arch.utils.image_io import imresize_pil, imresize_to

__all__ = [
    'LR_DEGRADATIONS',
    'EVAL_PROTOCOLS',
    'lr_size_for',
    'hr_crop_and_lr_size',
    'hr_crop_for_lr',
    'lr_size_matches',
    'to_uint8',
    'to_float',
    'quantize',
    'make_lr',
    'make_lr_uint8',
    'crop_border',
    'metric_options',
]

# How an LR is made from its HR (dataset option ``lr_degradation``); the first is the default.
LR_DEGRADATIONS = ('matlab', 'pil')

# Metrics per dataset family: Y channel or RGB, crop border ceil(scale) + extra_border, BasicSR metrics.
EVAL_PROTOCOLS = {
    'benchmark': {'test_y_channel': True, 'extra_border': 0, 'metrics': ('psnr', 'ssim')},
    'div2k': {'test_y_channel': False, 'extra_border': 6, 'metrics': ('psnr',)},
}

# the epsilon keeps e.g. 480 / 2.4 = 199.99999999999997 from flooring to 199
_FLOOR_EPS = 1e-9


# ---------------------------------------------------------------------------- sizes
def lr_size_for(hr_size, scale: float) -> tuple:
    """The protocol's LR size ``floor(n / s)`` per axis of an HR size (not checked to be >= 1)."""
    scale = float(scale)
    return tuple(math.floor(n / scale + _FLOOR_EPS) for n in hr_size)


def hr_crop_for_lr(lr_size, scale: float) -> tuple:
    """The HR size ``round(n * s)`` per axis that an LR of ``lr_size`` stands for at ``scale``."""
    scale = float(scale)
    return tuple(round(n * scale) for n in lr_size)


def hr_crop_and_lr_size(hr_size, scale: float):
    """Sizes of the evaluation protocol for a (possibly non-integer) scale.

    LR size is ``floor(H / s)``; the HR is cropped (top-left) to ``round(h_lr * s)`` so that the
    pair has exactly the requested ratio, as in LIIF's and GaussianSR's evaluation.

    Args:
        hr_size (tuple[int, int]): HR (H, W).
        scale (float): Scale factor > 0.

    Returns:
        tuple: ((hr_h, hr_w), (lr_h, lr_w)).
    """
    scale = check_scale(scale)
    lr = lr_size_for(hr_size, scale)
    if min(lr) < 1:
        raise ValueError(f'image of size {tuple(hr_size)} is too small for scale {scale}')
    hr = tuple(min(n, full) for n, full in zip(hr_crop_for_lr(lr, scale), hr_size))
    return hr, lr


def lr_size_matches(hr_size, lr_size, scale: float) -> bool:
    """True when ``lr_size`` is the protocol's LR size of ``hr_size`` at ``scale``.

    That is ``floor(H / s) == h_lr`` per axis (for an integer ``s``: the HR is ``round(h_lr * s)``
    or larger by less than ``s``, as Set14-style images are); the HR can then be cropped to
    :func:`hr_crop_for_lr` of the LR.
    """
    want = hr_crop_for_lr(lr_size, scale)
    return all(hv >= wv and lv == fv for hv, wv, lv, fv in zip(hr_size, want, lr_size, lr_size_for(hr_size, scale)))


# ---------------------------------------------------------------------------- 8 bits
def _round_255(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8: ``clip(round(img * 255), 0, 255)`` (what a saved 8-bit
    image holds; BasicSR's ``tensor2img`` rounds the same way)."""
    return _round_255(img).astype(np.uint8)


def quantize(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] rounded to 8 bits, kept as float32 multiples of 1/255."""
    return (_round_255(img) / 255.0).astype(np.float32)


def to_float(img: np.ndarray) -> np.ndarray:
    """A uint8 image as float32 ``img / 255`` in [0, 1]."""
    return img.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------- LR generation
def make_lr(hr: np.ndarray, lr_size, degradation: str = 'matlab') -> np.ndarray:
    """Bicubic LR of a float HR image, 8-bit like a saved LR PNG.

    ``degradation``:

    * ``'matlab'`` (default): MATLAB's antialiased bicubic ``imresize`` to exactly ``lr_size``
      (:func:`~gaussiansr_arch.utils.image_io.imresize_to`), rounded to 8 bits, like the DIV2K and
      benchmark LR files;
    * ``'pil'``: LIIF's ``resize_fn`` (:func:`~gaussiansr_arch.utils.image_io.imresize_pil`):
      the HR truncated to 8 bits, Pillow bicubic, already 8-bit.

    Args:
        hr (ndarray): HxWx3 float32 in [0, 1].
        lr_size (tuple[int, int]): Output (h, w).
        degradation (str): ``'matlab'`` or ``'pil'``.

    Returns:
        ndarray: hxwx3 float32 in [0, 1], multiples of 1/255.
    """
    if degradation == 'matlab':
        return quantize(imresize_to(hr, lr_size))
    if degradation == 'pil':
        return imresize_pil(hr, lr_size)
    raise ValueError(f'make_lr: degradation must be one of {", ".join(LR_DEGRADATIONS)}, got {degradation!r}')


def make_lr_uint8(hr: np.ndarray, lr_size, degradation: str = 'matlab') -> np.ndarray:
    """:func:`make_lr` of a uint8 HR image, as uint8 (the LR PNG the tools write or compare with)."""
    return to_uint8(make_lr(to_float(hr), lr_size, degradation))


# ---------------------------------------------------------------------------- metrics
def crop_border(scale: float, extra: int = 0) -> int:
    """Pixels cropped from each HR border before scoring: ``ceil(scale) + extra``.

    The epsilon keeps a scale that floating point puts just above an integer at that integer.
    """
    return math.ceil(float(scale) - 1e-9) + extra


def metric_options(scale: float, protocol: str = 'benchmark') -> dict:
    """BasicSR ``metrics`` options of a dataset family at ``scale`` (see :data:`EVAL_PROTOCOLS`).

    ``'benchmark'``: PSNR and SSIM on the Y channel, crop border ``ceil(s)``; ``'div2k'`` (DIV2K-val,
    as in the LIIF / GaussianSR tables): PSNR on RGB, crop border ``ceil(s) + 6``.
    """
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f'metric_options: protocol must be one of {", ".join(EVAL_PROTOCOLS)}, got {protocol!r}')
    spec = EVAL_PROTOCOLS[protocol]
    border = crop_border(scale, spec['extra_border'])
    return {
        name: {'type': f'calculate_{name}', 'crop_border': border, 'test_y_channel': spec['test_y_channel']}
        for name in spec['metrics']
    }
