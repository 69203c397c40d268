"""The public interface shared by every arbitrary-scale arch of the package.

An arbitrary-scale arch splits its work in two: ``encode`` turns the LR image into a
reusable state (features, Gaussian field ...), ``query`` evaluates RGB at continuous
coordinates from that state. Everything else (``forward``, ``upscale``, multi-size
rendering with one encoding, chunking, input checks) is built on those two here, so LIIF,
GaussianSR and any later arch behave identically towards BasicSR and the tools.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gaussiansr_arch.archs.coordinates import check_size, make_cell, make_coord_rows, output_size_for_scale

# Queries rendered at once. Small chunks keep the per-query temporaries in cache: on a 2-core
# CPU 8192 renders 1.3-1.8x faster than 65536 for GaussianSR and LIIF alike (docs/benchmarks.md).
# GPUs prefer larger chunks (YAML ``val.chunk_size``, ``--chunk-size``).
DEFAULT_CHUNK_SIZE = 8192


def check_lq(lq: torch.Tensor) -> None:
    """Raise ValueError unless ``lq`` is a [B,3,h,w] floating-point tensor."""
    if not torch.is_tensor(lq) or lq.dim() != 4:
        shape = tuple(lq.shape) if torch.is_tensor(lq) else type(lq).__name__
        raise ValueError(f'lq must be a 4-D tensor [B,3,h,w], got {shape}')
    if lq.shape[1] != 3:
        raise ValueError(f'lq must have 3 (RGB) channels, got shape {tuple(lq.shape)}')
    if not lq.is_floating_point():
        raise ValueError(f'lq must be a floating-point tensor in [0,1], got dtype {lq.dtype}')


def check_queries(lq: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> None:
    """Raise ValueError unless coord and cell are both [B,Q,2] with lq's batch size."""
    for name, t in (('coord', coord), ('cell', cell)):
        if not torch.is_tensor(t) or t.dim() != 3 or t.shape[-1] != 2:
            shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f'{name} must be a [B,Q,2] tensor, got {shape}')
    if coord.shape != cell.shape:
        raise ValueError(f'coord and cell shapes differ: {tuple(coord.shape)} vs {tuple(cell.shape)}')
    if coord.shape[0] != lq.shape[0]:
        raise ValueError(f'coord batch size {coord.shape[0]} differs from lq batch size {lq.shape[0]}')


class ArbitraryScaleArch(nn.Module):
    """Base class: subclasses own an ``encoder`` module and implement ``state_from_features`` and
    ``query``; RGB in [0,1] in and out. A state is a dataclass with an ``lq`` field, the [B,3,h,w]
    input (``render`` takes the batch size, device and dtype from it)."""

    def check_output_size(self, lr_size: Sequence[int], size: Sequence[int]) -> None:
        """Raise ValueError when this arch cannot render ``size`` = (H, W) from an (h, w) input.

        Every size is fine by default; archs with a constraint (GSASR: one scale for both axes)
        override this, and the tools call it to turn the constraint into a one-line error before
        any work is done.
        """

    def encoder_input(self, lq: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] -> the encoder's input range [-1,1] (LIIF's normalisation)."""
        return (lq - 0.5) / 0.5

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> Any:
        """Everything encoding does after the encoder (tools may run the encoder in tiles)."""
        raise NotImplementedError

    def encode(self, lq: torch.Tensor) -> Any:
        """Encode an LR batch [B,3,h,w] into a state ``query`` and ``render`` accept."""
        return self.state_from_features(lq, self.encoder(self.encoder_input(lq)))

    def query(self, state: Any, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output-pixel ``cell`` [B,Q,2] (LIIF convention)."""
        raise NotImplementedError

    def forward(self, lq: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Query RGB at arbitrary coordinates.

        Args:
            lq (Tensor): LR image [B,3,h,w], RGB in [0,1].
            coord (Tensor): [B,Q,2] (row, col) in [-1,1].
            cell (Tensor): [B,Q,2] output-pixel size (2/H, 2/W).

        Returns:
            Tensor: [B,Q,3] RGB, nominally in [0,1] (not clamped).
        """
        check_lq(lq)
        check_queries(lq, coord, cell)
        return self.query(self.encode(lq), coord, cell)

    def render(self, state: Any, size: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
        """Render a whole (H, W) image from an encoded state, ``chunk_size`` queries at a time.

        Chunks are whole rows, so memory is bounded by ``chunk_size`` (at least one row),
        not by H*W. Subclasses may override this with an exact, faster dense form.

        Returns:
            Tensor: [B,3,H,W].
        """
        h, w = check_size(size)
        if chunk_size <= 0:
            raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
        lq = state.lq
        batch, device, dtype = lq.shape[0], lq.device, lq.dtype
        rows_per_chunk = max(1, chunk_size // w)
        out = torch.empty(batch, 3, h, w, device=device, dtype=dtype)
        for r0 in range(0, h, rows_per_chunk):
            r1 = min(h, r0 + rows_per_chunk)
            coord = make_coord_rows((h, w), r0, r1, device=device, dtype=dtype)
            coord = coord.unsqueeze(0).expand(batch, -1, -1)
            cell = make_cell((h, w), coord.shape[1], device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
            rgb = self.query(state, coord, cell)
            out[:, :, r0:r1] = rgb.transpose(1, 2).reshape(batch, 3, r1 - r0, w)
        return out

    def upscale(
        self, lq: torch.Tensor, size: Sequence[int] | None = None, scale=None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> torch.Tensor:
        """Upscale a whole LR image to ``size`` = (H, W), or by ``scale`` (number or (s_h, s_w)).

        Encodes once and renders the output ``chunk_size`` queries at a time.

        Returns:
            Tensor: [B,3,H,W], RGB (not clamped).
        """
        return self.upscale_many(lq, [self._resolve_size(lq, size, scale)], chunk_size)[0]

    def upscale_many(
        self, lq: torch.Tensor, sizes: Sequence[Sequence[int]], chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> list[torch.Tensor]:
        """Render several output sizes from one encoding (the encoder runs once).

        Returns:
            list[Tensor]: one [B,3,H,W] tensor per entry of ``sizes``.
        """
        check_lq(lq)
        checked = [check_size(s) for s in sizes]
        state = self.encode(lq)
        return [self.render(state, s, chunk_size) for s in checked]

    @staticmethod
    def _resolve_size(lq: torch.Tensor, size, scale) -> tuple[int, int]:
        check_lq(lq)
        if (size is None) == (scale is None):
            raise ValueError('give exactly one of size=(H, W) or scale')
        if size is not None:
            return check_size(size)
        return output_size_for_scale(lq.shape[-2:], scale)
