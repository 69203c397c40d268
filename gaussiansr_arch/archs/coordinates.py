"""Pixel-centre coordinates in LIIF's convention.

A coordinate is (row, col) in [-1, 1]; pixel ``i`` of an axis of length ``n`` has its centre
at ``-1 + (2 i + 1) / n``. A cell is the size of one output pixel in the same units,
``(2 / H, 2 / W)``. Keeping LIIF's convention lets LIIF-style models share data and checkpoints.
"""

import math
from collections.abc import Sequence

import torch


def axis_coord(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an axis of length ``n``: [n].

    Computed with LIIF's exact float arithmetic (``(-1 + 1/n) + (2/n) * i``): LIIF's local
    ensemble is ill-conditioned for queries on LR pixel centres at the border, where the
    last float bit decides the blend, so LIIF parity needs the same rounding.
    """
    return axis_coord_at(torch.arange(n, device=device), torch.tensor(n, device=device), dtype)


def axis_coord_at(index: torch.Tensor, n: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """``axis_coord(n)[index]`` for tensors of pixel indices and axis lengths (broadcast), same rounding.

    The two constants ``-1 + 1/n`` and ``2/n`` are formed in double and rounded once to ``dtype``
    (as a Python float operand is), then the arithmetic runs in ``dtype``.
    """
    r = 1 / n.double()
    return (-1 + r).to(dtype) + (2 * r).to(dtype) * index.to(dtype)


def size_tensor(size: Sequence[int], like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An (h, w) size as a [2] tensor with ``like``'s device and dtype (or ``dtype``).

    Built by ``torch.tensor`` from the integers: under ``torch.export`` (ONNX export) sizes read
    from input shapes then stay symbolic, where ``float(h)`` or ``like.new_tensor`` would freeze
    them to the example input's size. Same values as ``like.new_tensor([float(h), float(w)])``.
    """
    return torch.tensor([size[0], size[1]], dtype=dtype or like.dtype, device=like.device)


def pixel_position(coord: torch.Tensor, size) -> torch.Tensor:
    """Position of [-1, 1] coordinates in pixel units of a grid: ``(coord + 1) * n / 2 - 0.5``.

    Pixel ``i`` of an axis of ``n`` pixels (centre ``-1 + (2 i + 1) / n``) lands on ``i``; the
    image spans [-0.5, n - 0.5]. The arithmetic runs in exactly this order (callers' float
    results depend on it).

    Args:
        coord (Tensor): [..., 2] (row, col) coordinates, or [...] along one axis.
        size (Sequence[int] | Tensor | int): (h, w) of the grid (typically the LR image), or
            sizes broadcastable to ``coord``: a tensor or a number, used as given.

    Returns:
        Tensor: shaped like ``coord``; pixel ``(m, n)`` has its centre at ``(m, n)``.
    """
    if isinstance(size, Sequence):
        size = size_tensor(size, coord)
    return (coord + 1) * size / 2 - 0.5


def pixel_grid(size: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Every pixel's (row, col) index of an (h, w) grid, [h,w,2]: the pixel centres in the units of
    :func:`pixel_position` (where the Gaussians of an LR image are anchored)."""
    h, w = size
    rows = torch.arange(h, device=device, dtype=dtype)
    cols = torch.arange(w, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1)


def make_coord(size: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of every pixel centre of an image.

    Args:
        size (Sequence[int]): Output size (H, W).

    Returns:
        Tensor: [H*W, 2], (row, col) in row-major pixel order.
    """
    return make_coord_rows(size, 0, size[0], device=device, dtype=dtype)


def make_cell(size: Sequence[int], num_queries: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Cell of an (H, W) output for ``num_queries`` queries: [num_queries, 2] = (2/H, 2/W)."""
    cell = torch.tensor([2.0 / size[0], 2.0 / size[1]], device=device, dtype=dtype)
    return cell.expand(num_queries, 2).clone()


def make_coord_rows(size: Sequence[int], row_start: int, row_stop: int, device=None, dtype=torch.float32):
    """Coordinates of the pixel centres of rows ``[row_start, row_stop)`` of an (H, W) image.

    Returns:
        Tensor: [(row_stop-row_start)*W, 2], row-major.
    """
    rows = axis_coord(size[0], device, dtype)[row_start:row_stop]
    cols = axis_coord(size[1], device, dtype)
    return torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1).reshape(-1, 2)


def output_size_for_scale(lr_size: Sequence[int], scale) -> tuple[int, int]:
    """Output size of an LR image upscaled by ``scale`` (a number or a (scale_h, scale_w) pair).

    Uses round(h * s), the size a HR crop of the LR patch would have.

    Raises:
        ValueError: if a scale is not a finite number > 0.
    """
    scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    if len(scales) != 2:
        raise ValueError(f'scale must be a number or a (scale_h, scale_w) pair, got {scale!r}')
    for s in scales:
        check_scale(s)
    return tuple(max(1, round(n * s)) for n, s in zip(lr_size, scales))


def check_scale(scale) -> float:
    """Return ``scale`` as a float, or raise ValueError if it is not a finite number > 0."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ValueError(f'scale must be a number > 0, got {scale!r}') from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f'scale must be a finite number > 0, got {scale!r}')
    return value


def check_size(size) -> tuple[int, int]:
    """Return ``size`` as an (H, W) pair of ints, or raise ValueError naming the bad value."""
    try:
        h, w = size
        pair = (int(h), int(w))
    except (TypeError, ValueError):
        raise ValueError(f'size must be an (H, W) pair of positive integers, got {size!r}') from None
    if pair != (h, w) or min(pair) <= 0:
        raise ValueError(f'size must be an (H, W) pair of positive integers, got {size!r}')
    return pair
