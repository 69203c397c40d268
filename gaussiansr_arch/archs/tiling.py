"""Tiled encoding for the arbitrary-scale archs: run the encoder tile by tile, with bounded memory.

Works with any :class:`~gaussiansr_arch.archs.arbitrary_scale.ArbitraryScaleArch` through its
hooks ``encoder``, ``encoder_input(lq)`` and ``state_from_features(lq, feat)``. With an overlap
of at least the encoder's receptive-field radius (:func:`receptive_radius`) the stitched feature
map equals the untiled one up to floating-point rounding. Pure torch: the tools add the CLI.
"""

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch

__all__ = ['receptive_radius', 'encode_features_tiled', 'encode_tiled']

# Layers whose reach is not local: with them tiling can only be approximate.
_NON_LOCAL = (torch.nn.MultiheadAttention, torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d, torch.nn.MaxPool2d)


def receptive_radius(module: torch.nn.Module) -> int | None:
    """Upper bound on the spatial receptive-field radius (in input pixels) of a conv-only net.

    Sums ``dilation * (kernel - 1) // 2`` over every Conv2d: every path through a residual
    conv net uses a subset of its convs, so the sum bounds the radius. Returns None when the
    net has layers whose reach is not local (attention, pooling, linear layers over space) or
    strided convs, in which case tiling can only be approximate.
    """
    radius = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            if tuple(m.stride) != (1, 1):
                return None
            radius += max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
        elif isinstance(m, _NON_LOCAL) or 'Attention' in type(m).__name__:
            return None
    return radius


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile)) if length > tile else [0]


def encode_features_tiled(encoder: torch.nn.Module, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``encoder`` on overlapping tiles of ``image`` and stitch the tile interiors.

    Each output tile [y0:y0+tile, x0:x0+tile] is computed from the input window widened by
    ``overlap`` pixels on every side (clipped at the image border, where the encoder's own
    zero padding then applies exactly as for the whole image). With ``overlap`` at least the
    encoder's receptive-field radius the stitched map equals ``encoder(image)`` up to
    floating-point rounding.
    """
    _, _, h, w = image.shape
    feat = None
    for y0 in _tile_starts(h, tile):
        for x0 in _tile_starts(w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            wy0, wx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            wy1, wx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            out = encoder(image[:, :, wy0:wy1, wx0:wx1])
            if feat is None:
                feat = out.new_empty(out.shape[0], out.shape[1], h, w)
            feat[:, :, y0:y1, x0:x1] = out[:, :, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    return feat


def encode_tiled(arch: 'ArbitraryScaleArch', lq: torch.Tensor, tile: int, overlap: int) -> Any:
    """``arch.encode(lq)`` with the encoder run tile by tile (bounded memory on large inputs).

    Uses the arch's hooks ``encoder_input(lq)`` (the normalised encoder input) and
    ``state_from_features(lq, feat)`` (everything ``encode`` does after the encoder). Whatever follows the encoder
    (e.g. GaussianSR's 3x3 kernel classifier) runs once on the stitched full feature map,
    so only the encoder's own receptive field needs the overlap.

    Raises:
        ValueError: ``tile`` <= 0 or ``overlap`` < 0.
    """
    if tile <= 0 or overlap < 0:
        raise ValueError(f'tile must be > 0 and overlap >= 0, got {tile} and {overlap}')
    feat = encode_features_tiled(arch.encoder, arch.encoder_input(lq), tile, overlap)
    return arch.state_from_features(lq, feat)
