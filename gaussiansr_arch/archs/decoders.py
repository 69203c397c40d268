"""Decoders: rendered 64-channel features at a query -> RGB.

Every decoder takes the features rendered at the query (or, when it declares
``reads_neighbourhood``, at the query's 3x3 HR-pixel neighbourhood), the query's relative
coordinate to its nearest LR pixel and its cell, both in LIIF/LTE units (multiplied by the LR
size). ``DECODERS`` lists them by name; a new decoder is one :class:`Decoder` subclass added there.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# In-place ReLU: a Linear's backward does not need its output, so this is autograd-safe and
# saves one full pass over every hidden activation.
ACTIVATIONS = {'relu': lambda: nn.ReLU(inplace=True), 'gelu': nn.GELU}


def build_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: str = 'relu') -> nn.Sequential:
    """Linear layers with an activation between them (LIIF's ``mlp``)."""
    if act not in ACTIVATIONS:
        raise ValueError(f'unknown activation {act!r}; known: {sorted(ACTIVATIONS)}')
    layers, last = [], in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), ACTIVATIONS[act]()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """What GaussianSR asks of a decoder: a per-query call and, optionally, a dense whole-image form.

    Subclasses set the two capability flags, implement ``from_options`` and ``forward``, and
    ``forward_dense`` when ``has_dense_form``. GaussianSR branches on the flags only.

    Attributes:
        reads_neighbourhood (bool): ``forward`` reads the features at the 3x3 HR pixels around
            each query, [B,Q,9,C], instead of the features at the query, [B,Q,C].
        has_dense_form (bool): ``forward_dense`` decodes every pixel of a dense HR feature map
            (GaussianSR's ``render`` then renders whole images in row tiles with it).
    """

    reads_neighbourhood = False
    has_dense_form = False

    @classmethod
    def from_options(
        cls, in_channels: int, hidden: Sequence[int] | None = None, num_freq: int = 256, act: str | None = None
    ) -> 'Decoder':
        """Build from GaussianSR's decoder options (None: this decoder's default; unused ones are ignored)."""
        raise NotImplementedError

    def forward(self, feat: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        """Decode queries.

        Args:
            feat (Tensor): [B,Q,C] features at the queries, or [B,Q,9,C] at their 3x3 HR
                neighbourhoods when ``reads_neighbourhood`` (row-major, zeros outside the image).
            rel_coord (Tensor): [B,Q,2] offset to the nearest LR pixel centre, x (h, w).
            rel_cell (Tensor): [B,Q,2] cell x (h, w).

        Returns:
            Tensor: [B,Q,3].
        """
        raise NotImplementedError

    def forward_dense(
        self, feat: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor, pad_rows: bool = True
    ) -> torch.Tensor:
        """Decode every pixel of a dense HR feature map (only when ``has_dense_form``).

        Args:
            feat (Tensor): [B,C,R,W] rendered features. With ``pad_rows`` False the first
                and last rows are a halo (neighbours only, not decoded; zeros beyond the image).
            rel_coord (Tensor): [B,R',W,2] with R' = R (pad_rows) or R - 2.
            rel_cell (Tensor): [B,1,1,2] or broadcastable to rel_coord.
            pad_rows (bool): zero-pad rows (the map is the whole image height).

        Returns:
            Tensor: [B,R',W,3].
        """
        raise NotImplementedError


class LTEDecoder(Decoder):
    """The local texture estimator decoder of the authors' code, evaluated at the queries.

    On a dense HR feature map it would be: ``coef = conv3x3(F)``, ``freq = conv3x3(F)``,
    ``phase = Linear(cell)``; per pixel ``x = coef * [cos(pi g), sin(pi g)]`` with
    ``g_k = freq_{2k} r_y + freq_{2k+1} r_x + phase_k`` (r = relative coordinate), then an MLP.
    The two 3x3 convs are linear maps of the features at the query's 3x3 HR-pixel
    neighbourhood, so ``forward`` takes those 9 feature vectors directly and training never
    renders a dense map. ``forward_dense`` is the same function on a dense map (faster for a
    whole image); the two agree exactly (tested).

    Args:
        in_channels (int): Rendered feature channels. Default: 64.
        num_freq (int): Channels of coef/freq (2 x number of frequencies). Default: 256.
        hidden (Sequence[int]): MLP hidden widths. Default: [256, 256, 256, 256].
        act (str): MLP activation. Default: 'gelu' (authors' code).
    """

    reads_neighbourhood = True
    has_dense_form = True

    def __init__(
        self, in_channels: int = 64, num_freq: int = 256, hidden: Sequence[int] = (256,) * 4, act: str = 'gelu'
    ):
        super().__init__()
        if num_freq % 2:
            raise ValueError(f'num_freq must be even, got {num_freq}')
        self.in_channels = in_channels
        self.coef = nn.Conv2d(in_channels, num_freq, 3, 1, 1)
        self.freq = nn.Conv2d(in_channels, num_freq, 3, 1, 1)
        self.phase = nn.Linear(2, num_freq // 2, bias=False)
        self.mlp = build_mlp(num_freq, hidden, 3, act)

    @classmethod
    def from_options(
        cls, in_channels: int, hidden: Sequence[int] | None = None, num_freq: int = 256, act: str | None = None
    ) -> 'LTEDecoder':
        return cls(in_channels, num_freq, hidden or (256,) * 4, act or 'gelu')

    def _stacked_conv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """coef and freq convs as one conv (one GEMM instead of two): weight [2F,C,3,3], bias [2F]."""
        return torch.cat([self.coef.weight, self.freq.weight]), torch.cat([self.coef.bias, self.freq.bias])

    def decode(
        self, coef: torch.Tensor, freq: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor
    ) -> torch.Tensor:
        """[..., num_freq] coef and freq, [..., 2] rel_coord and rel_cell -> [..., 3]."""
        freq = freq.unflatten(-1, (-1, 2))  # [..., F/2, 2]: (row, col) weights per frequency
        angle = (freq * rel_coord.unsqueeze(-2)).sum(-1) + self.phase(rel_cell)
        angle = math.pi * angle
        return self.mlp(coef * torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1))

    def forward(self, neighbourhood: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor):
        """Decode queries from their 3x3 HR neighbourhoods.

        Args:
            neighbourhood (Tensor): [B,Q,9,C] features at the 3x3 HR pixels around each query
                (row-major, centre at index 4; zeros outside the image).
            rel_coord (Tensor): [B,Q,2] offset to the nearest LR pixel centre, x (h, w).
            rel_cell (Tensor): [B,Q,2] cell x (h, w).

        Returns:
            Tensor: [B,Q,3].
        """
        weight, bias = self._stacked_conv()
        # A 3x3 conv at one pixel is a linear map of its 3x3 neighbourhood (row-major, channels last).
        coef_freq = F.linear(neighbourhood.flatten(-2), weight.permute(0, 2, 3, 1).flatten(1), bias)
        coef, freq = coef_freq.chunk(2, dim=-1)
        return self.decode(coef, freq, rel_coord, rel_cell)

    def forward_dense(
        self, feat: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor, pad_rows: bool = True
    ) -> torch.Tensor:
        """:meth:`Decoder.forward_dense`: the two 3x3 convs as one dense conv, then ``decode`` per pixel."""
        padding = (1, 1) if pad_rows else (0, 1)
        weight, bias = self._stacked_conv()
        # Channels last once, so the per-pixel maths below runs on contiguous rows.
        coef_freq = F.conv2d(feat, weight, bias, padding=padding).permute(0, 2, 3, 1).contiguous()
        coef, freq = coef_freq.chunk(2, dim=-1)
        return self.decode(coef, freq, rel_coord, rel_cell)


class MLPDecoder(Decoder):
    """The paper's "several fully connected layers": [features, rel_coord, rel_cell] -> MLP -> RGB.

    Args:
        in_channels (int): Rendered feature channels. Default: 64.
        hidden (Sequence[int]): MLP hidden widths. Default: [256, 256, 256].
        act (str): Activation. Default: 'relu' (LIIF).
    """

    def __init__(self, in_channels: int = 64, hidden: Sequence[int] = (256,) * 3, act: str = 'relu'):
        super().__init__()
        self.in_channels = in_channels
        self.mlp = build_mlp(in_channels + 4, hidden, 3, act)

    @classmethod
    def from_options(
        cls, in_channels: int, hidden: Sequence[int] | None = None, num_freq: int = 256, act: str | None = None
    ) -> 'MLPDecoder':
        return cls(in_channels, hidden or (256,) * 3, act or 'relu')  # no coef/freq: num_freq unused

    def forward(self, feat: torch.Tensor, rel_coord: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        """feat [...,C], rel_coord [...,2], rel_cell [...,2] -> [...,3]."""
        return self.mlp(torch.cat([feat, rel_coord, rel_cell.expand_as(rel_coord)], dim=-1))


# A new decoder: a ``Decoder`` subclass, listed here under the name ``GaussianSR(decoder=...)`` takes.
DECODERS: dict[str, type[Decoder]] = {
    'lte': LTEDecoder,
    'mlp': MLPDecoder,
}


def build_decoder(
    name: str, in_channels: int, hidden: Sequence[int] | None = None, num_freq: int = 256, act: str | None = None
) -> Decoder:
    """Build a decoder by name ('lte', 'mlp') from GaussianSR's decoder options.

    Args:
        name (str): A key of ``DECODERS``.
        in_channels (int): Rendered feature channels.
        hidden (Sequence[int] | None): MLP hidden widths (None: the decoder's default).
        num_freq (int): coef/freq channels (decoders without them ignore it). Default: 256.
        act (str | None): MLP activation (None: the decoder's default).

    Raises:
        ValueError: unknown name (lists the known ones).
    """
    if name not in DECODERS:
        raise ValueError(f'unknown decoder {name!r}; known decoders: {sorted(DECODERS)}')
    return DECODERS[name].from_options(in_channels, hidden=hidden, num_freq=num_freq, act=act)
