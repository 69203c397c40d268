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
* metrics (:func:`crop_border`, :func:`metric_options`, :data:`EVAL_PROTOCOLS`): under LIIF's
  protocol the benchmarks (Set5, Set14, B100, Urban100, Manga109, General100) are scored on the Y
  channel with a crop border of ``ceil(s)``, DIV2K-val on RGB with ``ceil(s) + 6``;
* the papers' protocols (:class:`Protocol`, :data:`PROTOCOLS`, :func:`get_protocol`): ``liif``,
  ``gsasr`` and ``continuoussr``, each a named object saying how its paper makes the LR at each
  scale, which channel it scores and which border it crops, with the official source it comes from.
  The test option files (one protocol per method), ``gaussiansr-compare --protocol`` and the
  datasets' LR generation all go through them.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

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
    'Protocol',
    'PROTOCOLS',
    'DEFAULT_PROTOCOL',
    'get_protocol',
    'dataset_family',
]

# How an LR is made from its HR (dataset option ``lr_degradation``); the first is the default.
LR_DEGRADATIONS = ('matlab', 'pil')

# Metrics per dataset family under LIIF's protocol: Y channel or RGB, crop border ceil(scale) +
# extra_border, BasicSR metrics (the ``liif`` :class:`Protocol` below; the others change channel and border).
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


def metric_options(scale: float, family: str = 'benchmark', protocol='liif') -> dict:
    """BasicSR ``metrics`` options of a dataset family at ``scale`` under ``protocol``.

    ``family`` is ``'benchmark'`` (Set5, Set14, ...: PSNR and SSIM) or ``'div2k'`` (DIV2K-val: PSNR);
    the protocol (a name or a :class:`Protocol`, default ``liif``) decides channel and crop border:
    LIIF: benchmarks Y with ``ceil(s)``, DIV2K-val RGB with ``ceil(s) + 6`` (see :data:`EVAL_PROTOCOLS`).
    """
    if family not in EVAL_PROTOCOLS:
        raise ValueError(f'metric_options: dataset family must be one of {", ".join(EVAL_PROTOCOLS)}, got {family!r}')
    proto = get_protocol(protocol)
    border, y_channel = proto.crop_border(scale, family), proto.test_y_channel(family)
    return {
        name: {'type': f'calculate_{name}', 'crop_border': border, 'test_y_channel': y_channel}
        for name in EVAL_PROTOCOLS[family]['metrics']
    }


# ---------------------------------------------------------------------------- the papers' protocols
def dataset_family(name: str) -> str:
    """``'div2k'`` for a dataset named DIV2K... (DIV2K-val, DIV2K100 ...), else ``'benchmark'``."""
    return 'div2k' if str(name).lower().startswith('div2k') else 'benchmark'


@dataclass(frozen=True)
class Protocol:
    """One paper's evaluation protocol: how the LR is made at each scale, what is scored, and where
    the rule comes from.

    Sizes are the same in all three (:func:`hr_crop_and_lr_size`: LR ``floor(H / s)``, HR cropped
    top-left to ``round(h_lr * s)``), as are the Y formula (BT.601 luma; LIIF's ``calc_psnr``
    coefficients / 256 equal BasicSR's / 255) and the metric functions we run (BasicSR's
    ``calculate_psnr`` / ``calculate_ssim`` on 8-bit images; ``official_psnr`` says what the
    official code scores).

    Attributes:
        name (str): Registry name (``liif``, ``gsasr``, ``continuoussr``).
        title (str): Whose protocol, in a few words.
        source (str): Where the rule is stated (paper, official file).
        lr_file_scales (tuple[float, ...]): Scales at which the set's own MATLAB-bicubic LR files are
            read (``dataroot_lq``); at every other scale the LR is made from the HR.
        pil_from (float): LR made from the HR by PIL bicubic (LIIF's ``resize_fn``,
            :func:`make_lr` ``'pil'``) from this scale up, by MATLAB bicubic (BasicSR's ``imresize``)
            below it; ``0`` = PIL at every scale, ``inf`` = MATLAB at every scale.
        benchmark_y (bool): Benchmarks scored on the Y channel (else RGB).
        div2k_y (bool): DIV2K-val scored on the Y channel (else RGB).
        div2k_extra_border (int): Added to the crop border on DIV2K-val.
        max_border (int | None): Crop border capped at this value (GSASR: 8), None = no cap.
        official_psnr (str): What the official code's PSNR is computed on.
    """

    name: str
    title: str
    source: str
    lr_file_scales: tuple = ()
    pil_from: float = math.inf
    benchmark_y: bool = True
    div2k_y: bool = False
    div2k_extra_border: int = 6
    max_border: int | None = None
    official_psnr: str = ''

    def reads_lr_files(self, scale: float) -> bool:
        """True when the set's own LR files are read at ``scale`` (else the LR is made from the HR)."""
        return any(abs(float(scale) - s) < 1e-9 for s in self.lr_file_scales)

    def lr_degradation(self, scale: float) -> str:
        """How the LR is made from the HR at ``scale`` (a :data:`LR_DEGRADATIONS` name).

        At the :attr:`lr_file_scales` this is the kernel of the set's LR files (MATLAB bicubic)."""
        if self.reads_lr_files(scale):
            return 'matlab'
        return 'pil' if float(scale) >= self.pil_from else 'matlab'

    def test_y_channel(self, family: str = 'benchmark') -> bool:
        """Whether ``family`` (``'benchmark'`` or ``'div2k'``) is scored on the Y channel."""
        return self.div2k_y if family == 'div2k' else self.benchmark_y

    def crop_border(self, scale: float, family: str = 'benchmark') -> int:
        """Pixels cropped from each border before scoring ``family`` at ``scale``."""
        border = crop_border(scale, self.div2k_extra_border if family == 'div2k' else 0)
        return border if self.max_border is None else min(border, self.max_border)

    def make_pair(self, hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR crop), both uint8, of a uint8 HR image at ``scale`` with the LR made from the HR
        (:func:`hr_crop_and_lr_size`, :meth:`lr_degradation`)."""
        (hh, ww), lr_size = hr_crop_and_lr_size(hr.shape[:2], scale)
        crop = hr[:hh, :ww]
        return make_lr_uint8(crop, lr_size, self.lr_degradation(scale)), crop

    def describe(self) -> str:
        """One line: LR rule, channel and crop border (for headers and reports)."""

        def scales(values):
            return ', '.join(f'x{v:g}' for v in values)

        if self.lr_file_scales:
            lr = f"the set's MATLAB-bicubic LR at {scales(self.lr_file_scales)}, else "
        else:
            lr = ''
        if self.pil_from == 0:
            lr += 'PIL bicubic from the HR at every scale'
        elif math.isinf(self.pil_from):
            lr += 'MATLAB bicubic from the HR at every scale'
        else:
            lr += f'MATLAB bicubic from the HR below x{self.pil_from:g}, PIL bicubic from x{self.pil_from:g} up'
        cap = f'min(ceil(s), {self.max_border})' if self.max_border is not None else 'ceil(s)'
        bench = f'benchmarks {"Y" if self.benchmark_y else "RGB"} crop {cap}'
        extra = f' + {self.div2k_extra_border}' if self.div2k_extra_border else ''
        div2k = f'DIV2K-val {"Y" if self.div2k_y else "RGB"} crop {cap}{extra}'
        return f'LR: {lr}; {bench}; {div2k}'


LIIF = Protocol(
    name='liif',
    title="LIIF's (Chen et al., CVPR 2021; also GaussianSR's and MetaSR's rows in the LIIF/GaussianSR tables)",
    source='LIIF official code: configs/test/test-*.yaml, datasets/wrappers.py (resize_fn), utils.calc_psnr',
    lr_file_scales=(2.0, 3.0, 4.0),
    pil_from=6.0,
    official_psnr='float outputs (utils.calc_psnr)',
)
GSASR = Protocol(
    name='gsasr',
    title="GSASR's (Chen et al., ICCV 2025)",
    source=(
        'GSASR official code: options/test/paper/test_GSASR_EDSR-Baseline_paper_*.yml (crop_border 8 at x12), '
        'README, Metrics (crop border = scale up to x8, 8 above; Y channel), '
        'basicsr.utils.matlab_functions.imresize'
    ),
    pil_from=math.inf,
    div2k_y=True,
    div2k_extra_border=0,
    max_border=8,
    official_psnr='8-bit outputs (BasicSR calculate_psnr)',
)
CONTINUOUSSR = Protocol(
    name='continuoussr',
    title="ContinuousSR's (Peng et al., 2025)",
    source=(
        'ContinuousSR official code: configs/test/test-set5-4.yaml (sr-implicit-downsampled from HR), '
        'datasets/wrappers.py (resize_fn = PIL bicubic), utils.calc_psnr (benchmark: Y, shave = scale; '
        'div2k: RGB, shave = scale + 6)'
    ),
    pil_from=0.0,
    official_psnr='float outputs (utils.calc_psnr)',
)

# name -> Protocol: the one registry every tool looks protocols up in.
PROTOCOLS = {p.name: p for p in (LIIF, GSASR, CONTINUOUSSR)}
DEFAULT_PROTOCOL = 'liif'


def get_protocol(name) -> Protocol:
    """The :class:`Protocol` called ``name`` (a Protocol is returned as is); a ValueError naming an
    unknown one."""
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(f'unknown protocol {name!r}: choose one of {", ".join(PROTOCOLS)}') from None


# ---------------------------------------------------------------------------- tensors
def image_to_tensor(img: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """HxWx3 RGB uint8 (or float in [0,1]) -> [1,3,H,W] float tensor in [0,1]."""
    arr = to_float(img) if img.dtype == np.uint8 else img.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(device=device, dtype=dtype)


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] (or [3,H,W]) tensor in [0,1] -> HxWx3 RGB uint8, rounded like BasicSR's tensor2img."""
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    return to_uint8(t.permute(1, 2, 0).numpy())
