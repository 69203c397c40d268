"""A comparison's datasets and metrics, as a library (``gaussiansr-compare`` and its ``report.html``):
one dataset's entry and crop border, its (LR, HR) pairs by the evaluation protocol, MATLAB-style
bicubic and BasicSR's PSNR/SSIM. Errors are one-line :class:`~gaussiansr_arch.toolkit.errors.ToolError`."""

import os
import re
from dataclasses import dataclass

import numpy as np

from gaussiansr_arch.data.protocol import (
    DEFAULT_PROTOCOL,
    crop_border,
    get_protocol,
    hr_crop_for_lr,
    lr_size_matches,
    to_float,
    to_uint8,
)
from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.toolkit.outputs import format_scale


@dataclass
class DatasetEntry:
    """One dataset: HR folder, optional LR folder (``{scale}`` is substituted), scales, protocol.

    ``protocol`` (a :data:`~gaussiansr_arch.data.protocol.PROTOCOLS` name) makes the LR and, with the
    dataset's ``family`` (``benchmark`` or ``div2k``), gives ``crop_border`` and ``test_y_channel``
    unless the dataset sets them."""

    name: str
    hr: str
    scales: list
    lr: str | None = None
    filename_tmpl: str = '{}'
    crop_border: object = 'scale'
    test_y_channel: bool = True
    protocol: str = DEFAULT_PROTOCOL
    family: str = 'benchmark'


def default_dataset_name(hr: str) -> str:
    """A dataset's name from its HR folder: the folder's name, or its parent's for a folder called
    ``HR`` (``<root>/Set5/HR`` -> ``Set5``, the layout of gaussiansr-prepare-benchmark)."""
    path = os.path.normpath(os.path.abspath(hr))
    base = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) or base if base == 'HR' else base


def protocol_border(proto, family: str) -> str:
    """The protocol's crop border as a ``crop_border`` value ('scale', 'scale+6', 'min(scale,8)')."""
    extra = proto.div2k_extra_border if family == 'div2k' else 0
    text = f'scale+{extra}' if extra else 'scale'
    return f'min({text},{proto.max_border})' if proto.max_border is not None else text


def crop_border_for(ds: DatasetEntry, scale: float, where: str = 'dataset') -> int:
    """The crop border of ``ds`` at ``scale``: an int, 'scale' (= ceil(scale)) or 'scale+N'."""
    value = ds.crop_border
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).replace(' ', '')
    if text == 'scale':
        return crop_border(scale)
    if text.startswith('scale+') and text[6:].isdigit():
        return crop_border(scale, int(text[6:]))
    capped = re.fullmatch(r'min\((scale(?:\+\d+)?),(\d+)\)', text)
    if capped:
        inner = DatasetEntry(ds.name, ds.hr, ds.scales, crop_border=capped.group(1))
        return min(crop_border_for(inner, scale, where), int(capped.group(2)))
    raise ToolError(
        f"{where}: dataset {ds.name!r}: crop_border {value!r} must be an int >= 0, 'scale', 'scale+N' or 'min(scale,N)'"
    )


# ---------------------------------------------------------------------------- data
def _lr_path(ds: DatasetEntry, hr_path: str, scale: float) -> str:
    folder = ds.lr.replace('{scale}', format_scale(scale))
    stem, ext = os.path.splitext(os.path.basename(hr_path))
    base = ds.filename_tmpl.replace('{scale}', format_scale(scale)).format(stem)
    for candidate in (base + ext, base + '.png'):
        if os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    raise ToolError(f'dataset {ds.name!r}: no LR image {os.path.join(folder, base + ext)} for {hr_path}')


def make_pair(ds: DatasetEntry, hr_path: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) uint8 RGB for one image at ``scale``, by the dataset's evaluation protocol
    (:mod:`gaussiansr_arch.data.protocol`, the same as the datasets').

    Without an LR folder: HR is cropped (top-left) so that h_lr = floor(H / s), w_lr = floor(W / s)
    and the HR crop is round(h_lr * s) x round(w_lr * s); the LR is made from the crop as the protocol
    says at that scale (MATLAB or PIL bicubic, :meth:`~gaussiansr_arch.data.protocol.Protocol.make_pair`),
    8-bit like a saved LR file. With an LR folder the LR must be floor(HR / s) (as the datasets
    require) and the HR is cropped to round(lr * s).
    """
    from gaussiansr_arch.utils.image_io import read_image

    hr = read_image(hr_path)
    if ds.lr:
        lr_path = _lr_path(ds, hr_path, scale)
        lr = read_image(lr_path)
        hh, ww = hr_crop_for_lr(lr.shape[:2], scale)
        if not lr_size_matches(hr.shape[:2], lr.shape[:2], scale):
            relation = 'larger than' if hh > hr.shape[0] or ww > hr.shape[1] else 'too small for'
            raise ToolError(
                f'{lr_path}: LR {lr.shape[0]}x{lr.shape[1]} x{scale:g} is {relation} HR {hr_path} '
                f'{hr.shape[0]}x{hr.shape[1]} (expects HR {hh}x{ww}; the LR must be floor(HR / {scale:g}))'
            )
        return lr, hr[:hh, :ww]
    try:
        return get_protocol(ds.protocol).make_pair(hr, scale)
    except ValueError:
        raise ToolError(f'{hr_path}: image {hr.shape[0]}x{hr.shape[1]} is too small for scale {scale:g}') from None


def bicubic_upscale(lr: np.ndarray, size) -> np.ndarray:
    """MATLAB-style bicubic upscaling of a uint8 RGB image to ``size`` (uint8)."""
    from gaussiansr_arch.utils.image_io import imresize_to

    return to_uint8(imresize_to(to_float(lr), size))


def metrics(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> tuple[float, float]:
    """BasicSR's PSNR and SSIM of two uint8 RGB images (BasicSR expects BGR for the Y channel)."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    sr_bgr, hr_bgr = sr[:, :, ::-1].astype(np.float64), hr[:, :, ::-1].astype(np.float64)
    psnr = calculate_psnr(sr_bgr, hr_bgr, crop_border, input_order='HWC', test_y_channel=y_channel)
    ssim = calculate_ssim(sr_bgr, hr_bgr, crop_border, input_order='HWC', test_y_channel=y_channel)
    return float(psnr), float(ssim)
