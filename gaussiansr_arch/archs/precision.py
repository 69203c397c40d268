"""Inference precision of every arch: float32, or bf16 / fp16 autocast with float32 weights.

Autocast (not ``.half()`` weights) keeps the parts that need range or precision in float32:
the Gaussian field builds and sums in float32 under autocast (``gaussian_field.field_dtype``),
coordinates stay float32, and outputs are returned as float32.
"""

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch

logger = logging.getLogger('basicsr')  # BasicSR's logger: training runs write it to their log file

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None for fp32), or ValueError in one line."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {precision!r}')
    device = torch.device(device)
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError(f'precision fp16 needs a CUDA device (got {device.type}); use bf16 or fp32')
    return PRECISIONS[precision]


def precision_context(precision: str, device: torch.device | str):
    """Context manager running the arch in ``precision`` on ``device`` (checked first)."""
    dtype = check_precision(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def compile_arch(net: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` ``net`` in place (its state-dict keys stay the same); returns ``net``.

    Where no compiler works (no C++ toolchain, an unsupported platform or op), dynamo reports
    the error as a warning and runs that code eagerly instead of failing.
    """
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    try:
        net.compile()
    except Exception as err:  # noqa: BLE001  (any failure here means: stay eager)
        logger.warning(f'torch.compile unavailable ({type(err).__name__}: {err}); running eagerly')
        return net
    logger.info('torch.compile: the arch is compiled on its first call (eager fallback on compiler errors)')
    return net


def upscale_in_precision(arch, lq: torch.Tensor, precision: str = 'fp32', **kwargs) -> torch.Tensor:
    """``arch.upscale(lq, **kwargs)`` in ``precision``; the result is float32 [B,3,H,W]."""
    with torch.no_grad(), precision_context(precision, lq.device):
        return arch.upscale(lq, **kwargs).float()


@torch.no_grad()
def upscale_tensor(
    arch: 'ArbitraryScaleArch',
    lq: torch.Tensor,
    size: Sequence[int],
    chunk_size: int,
    tile: int | None = None,
    overlap: int = 0,
    precision: str = 'fp32',
) -> torch.Tensor:
    """Upscale [1,3,h,w] to ``size`` with ``arch`` in ``precision``, tiling the encoder when ``tile`` is set.

    Raises:
        ValueError: a size the arch cannot render (its ``check_output_size``, e.g. GSASR's one scale).
    """
    from gaussiansr_arch.archs.coordinates import check_size
    from gaussiansr_arch.archs.tiling import encode_tiled

    size = check_size(size)
    arch.check_output_size(lq.shape[-2:], size)
    with torch.no_grad(), precision_context(precision, lq.device):
        if not tile or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
            return arch.upscale(lq, size=size, chunk_size=chunk_size).float()
        return arch.render(encode_tiled(arch, lq, tile, overlap), size, chunk_size).float()
