"""Inference precision of every arch: float32, or bf16 / fp16 autocast with float32 weights.

Autocast (not ``.half()`` weights) keeps the parts that need range or precision in float32:
the Gaussian field builds and sums in float32 under autocast (``gaussian_field.field_dtype``),
coordinates stay float32, and outputs are returned as float32.
"""

import contextlib

import torch

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


def upscale_in_precision(arch, lq: torch.Tensor, precision: str = 'fp32', **kwargs) -> torch.Tensor:
    """``arch.upscale(lq, **kwargs)`` in ``precision``; the result is float32 [B,3,H,W]."""
    with torch.no_grad(), precision_context(precision, lq.device):
        return arch.upscale(lq, **kwargs).float()
