"""ContinuousSR (Peng et al. 2025, "Pixel to Gaussian: Ultra-Fast Continuous Super-Resolution with
2D Gaussian Modeling"): RGB Gaussians predicted once per image, rendered at any output size.

The model follows the official ``ContinuousGaussian`` (facts read from the official code, see
docs/continuoussr.md; nothing copied):

1. **Gaussian vectors.** Encoder features [B,C,h,w] -> :class:`FeatureUpsampler` (3x3 conv
   C -> F with LeakyReLU, then two x2 pixel-shuffle stages: the reconstruction head of the
   released SwinIR / HAT encoders without their last conv) -> [B,F,4h,4w] -> pixel-unshuffle(2)
   -> [B,4F,2h,2w]: one 4F-vector per Gaussian, 2 x 2 Gaussians per LR pixel (F = 64: 256).
2. **Colour**: an MLP (GELU) of the vector -> RGB (not bounded, not multiplied by an opacity).
3. **Covariance** ("DGP-driven covariance weighting"): a 3x3 conv of the LeakyReLU'd vectors
   gives a 512-vector per Gaussian; its dot products with an MLP embedding of each entry of a
   fixed dictionary of 9 x 9 x 9 + 1 Cholesky factors, softmaxed over the dictionary, weight
   the dictionary's factors. The weighted factors / 4 are the Cholesky factors in LR pixels.
4. **Position** ("adaptive position drifting"): ``tanh`` of an MLP of the LeakyReLU'd vector
   moves each Gaussian by less than one LR pixel per axis from its grid point. The grid points
   are those of the official code: the top-left corners of the 2 x 2 sub-pixels, i.e. LR pixel
   (m, n) anchors Gaussians at (m - 0.5 + a/2, n - 0.5 + b/2), a, b in {0, 1}.
5. **Rendering**: the sum rule of the gsplat fork's ``rasterize_gaussians_sum`` through the shared
   renderer (``gaussian_renderer``, rule ``'gsplat_sum'``): per output pixel,
   ``sum_g [alpha_g >= 1/255] alpha_g colour_g`` with ``alpha_g = min(1, exp(-0.5 d^T Sigma^-1 d))``
   (opacity 1; the renderer's clamp is ``gaussian_renderer.ALPHA_MAX``), no background term (the
   fork's sum kernel leaves it out).

**Scale.** The official code scales the Cholesky factors by the requested per-axis scale
(rows by s_h, columns by s_w) because it rasterises in HR pixels; in LR pixels (ours) that
scaling and the change of units cancel exactly when the scale is the size ratio H/h, W/w, which
is what a query's cell says. So the Gaussians are one field per image, built once by ``encode``
and rendered at any size, square or not, by ``query``: ContinuousSR's "encode once, render
cheaply". The official code scales by the nominal scale s; when ``round(h s) != h s`` its
covariance is ``(s h / H)^2`` times ours along that axis (a relative difference below 1/(h s)).
The fork's tile rules (3-sigma boxes on 16 x 16 tiles, at most 256 Gaussians per tile) are not
reproduced: docs/continuoussr.md states the bound of the first and why the second is not wanted.

Input and output are RGB in [0, 1] with no normalisation, as the official model (its encoders
see the [0, 1] image; the rendered colours are the output).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import pixel_grid
from gaussiansr_arch.archs.decoders import build_mlp
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.gaussian_renderer import (
    ALPHA_MIN,
    AnchoredGaussians,
    GaussianTable,
    anchored_gaussian_table,
    conic_from_cholesky,
    evaluate_anchored_table,
    is_tracing,
    window_radius,
)
from gaussiansr_arch.utils.arch_detect import mlp_shape
from gaussiansr_arch.utils.methods import Method, register_method

# The covariance dictionary of the released model (the paper's "Deep Gaussian Prior" statistics):
# every combination of these values of the Cholesky factor L = [[l11, 0], [l21, l22]] in (x, y)
# order (x along columns), in dictionary units, plus one all-zero entry (9 * 9 * 9 + 1 = 730).
DICTIONARY_L11 = (0.0, 0.41, 0.62, 0.98, 1.13, 1.29, 1.64, 1.85, 2.36)
DICTIONARY_L21 = (-0.86, -0.36, -0.16, 0.19, 0.34, 0.49, 0.84, 1.04, 1.54)
DICTIONARY_L22 = (0.0, 0.33, 0.53, 0.88, 1.03, 1.18, 1.53, 1.73, 2.23)
# Dictionary units per LR pixel: the official code divides the weighted factors by 4 (then
# multiplies them by the scale to get HR pixels).
DICTIONARY_UNITS_PER_LR_PIXEL = 4.0
# Gaussians per LR pixel along each axis (pixel-unshuffle by 2 of features at 4x the LR size).
GAUSSIANS_PER_SIDE = 2
# Negative slope of the LeakyReLUs (PyTorch's default, which the official modules use).
LEAKY_SLOPE = 0.01
RULE = 'gsplat_sum'
# Without a gradient (inference) the Gaussians are computed in strips of LR rows, at most this many
# Gaussians each: the heads hold ~20 KB per Gaussian (1024-wide MLP layers, 730 dictionary logits),
# 11 GB for a 510x510 input at once. Each strip reads STRIP_HALO LR rows beyond its own, more than
# the receptive field of the upsampler and the covariance conv (1 + 1/2 + 1/4 + 1/2 LR rows), so
# the strips give the whole-image Gaussians (tested).
HEAD_STRIP_GAUSSIANS = 65536
STRIP_HALO = 3


def cholesky_dictionary(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The 730 dictionary entries (l11, l21, l22), in the official order: [730, 3].

    ``l11`` varies slowest, ``l22`` fastest (``itertools.product`` order), the zero entry last.
    """
    values = [torch.tensor(v, dtype=dtype, device=device) for v in (DICTIONARY_L11, DICTIONARY_L21, DICTIONARY_L22)]
    grid = torch.cartesian_prod(*values)
    return torch.cat([grid, grid.new_zeros(1, 3)], dim=0)


def covariance_from_cholesky(cholesky: torch.Tensor) -> torch.Tensor:
    """Sigma = L L^T in (row, col) order from official-order factors.

    Args:
        cholesky (Tensor): [..., 3] (l11, l21, l22) of ``L = [[l11, 0], [l21, l22]]`` in (x, y)
            order, i.e. ``Sigma_xx = l11^2``, ``Sigma_xy = l11 l21``, ``Sigma_yy = l21^2 + l22^2``
            (the fork's ``project_gaussians_2d``).

    Returns:
        Tensor: [..., 2, 2] ``[[Sigma_yy, Sigma_xy], [Sigma_xy, Sigma_xx]]``.
    """
    l11, l21, l22 = cholesky.unbind(-1)
    sxx, sxy, syy = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    return torch.stack([torch.stack([syy, sxy], -1), torch.stack([sxy, sxx], -1)], -2)


def conic_of_cholesky(cholesky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Opacity and renderer conic of official-order Cholesky factors.

    The conic comes from the factors directly (``Sigma^-1 = L^-T L^-1``), not from inverting
    ``L L^T``: the fork's float32 ``det = Sigma_xx Sigma_yy - Sigma_xy^2`` cancels for thin Gaussians
    (``l22 << |l21|``), where the factors keep full precision. A singular Gaussian (``l11 l22 = 0``:
    the dictionary's zero entries can win the whole softmax weight) is one the fork skips (zero
    determinant): it gets opacity 0 and a harmless conic.

    Args:
        cholesky (Tensor): [..., 3] (l11, l21, l22), (x, y) order (:func:`covariance_from_cholesky`).

    Returns:
        tuple[Tensor, Tensor]: opacity [...] (1, or 0 when singular) and conic [..., 3] (a, b, c)
        of ``E = a dy^2 + b dy dx + c dx^2 = -0.5 d^T Sigma^-1 d``.
    """
    l11, _, l22 = cholesky.unbind(-1)
    singular = (l11 * l22) == 0
    safe = torch.where(singular.unsqueeze(-1), torch.tensor([1.0, 0.0, 1.0]).to(cholesky), cholesky)
    # conic_from_cholesky's (row, col) formula on (x, y) factors gives the conic in (x, y) order.
    conic = conic_from_cholesky(safe).flip(-1)
    return (~singular).to(cholesky.dtype), conic


def max_window_radius(max_drift: float = 1.0) -> int:
    """A window radius that no ContinuousSR field can exceed (for traced / exported graphs).

    The softmax-weighted factors lie in the convex hull of the dictionary, where ``Sigma_xx = l11^2``
    and ``Sigma_yy = l21^2 + l22^2`` (convex) peak at an entry; centres are less than
    ``0.5 + max_drift`` from their anchor. A term beyond ``sigma sqrt(2 ln 255)`` along an axis has
    alpha < 1/255 and is dropped, so :func:`gaussian_renderer.window_radius`'s rule gives this bound.
    """
    dictionary = cholesky_dictionary(torch.float64) / DICTIONARY_UNITS_PER_LR_PIXEL
    sigma = covariance_from_cholesky(dictionary).diagonal(dim1=-2, dim2=-1).amax(0).sqrt().max().item()
    reach = sigma * math.sqrt(2 * math.log(1 / ALPHA_MIN))
    max_offset = 0.5 + max_drift  # grid point (at most half a pixel from the anchor) + drift
    return math.ceil(max_offset + reach - 0.5)


def init_mlp_like_official(mlp: nn.Sequential) -> nn.Sequential:
    """Xavier-uniform weights and zero biases (the official MLP's initialisation); returns ``mlp``."""
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return mlp


class FeatureUpsampler(nn.Module):
    """Encoder features -> features at 4x the LR size (the released encoders' reconstruction head).

    ``conv_before_upsample`` (3x3 conv C -> F, LeakyReLU), then ``upsample``: twice a 3x3 conv
    F -> 4F and pixel-shuffle(2). Parameter names are those of SwinIR / HAT's head (the official
    checkpoint's ``encoder.conv_before_upsample.*`` / ``encoder.upsample.*``).

    Args:
        in_channels (int): Encoder channels C.
        num_feat (int): Output channels F. Default: 64.
    """

    def __init__(self, in_channels: int, num_feat: int = 64):
        super().__init__()
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(in_channels, num_feat, 3, 1, 1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        )
        stages = []
        for _ in range(2):
            stages += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*stages)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """[B,C,h,w] -> [B,F,4h,4w]."""
        return self.upsample(self.conv_before_upsample(feat))


@dataclass
class ContinuousGaussians:
    """A batch's Gaussians on their 2h x 2w grid (row-major, 2 x 2 per LR pixel), in LR pixels.

    Attributes:
        centre (Tensor): [B,2h,2w,2] (row, col), LR pixel ``m``'s centre at ``m``.
        cholesky (Tensor): [B,2h,2w,3] (l11, l21, l22) in the official (x, y) order (see
            :func:`covariance_from_cholesky`), LR pixels.
        colour (Tensor): [B,2h,2w,3] RGB each Gaussian adds.
    """

    centre: torch.Tensor
    cholesky: torch.Tensor
    colour: torch.Tensor

    def anchored(self) -> AnchoredGaussians:
        """The same Gaussians as the renderer's :class:`AnchoredGaussians` (G = 4 per LR pixel, opacity 1)."""
        b, rows, cols = self.colour.shape[:3]
        h, w = rows // GAUSSIANS_PER_SIDE, cols // GAUSSIANS_PER_SIDE

        def per_pixel(t: torch.Tensor) -> torch.Tensor:  # [B,2h,2w,k] -> [B,h,w,4,k], g = 2 a + b
            t = t.reshape(b, h, GAUSSIANS_PER_SIDE, w, GAUSSIANS_PER_SIDE, t.shape[-1])
            return t.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, GAUSSIANS_PER_SIDE**2, -1)

        anchors = pixel_grid((h, w), self.centre.device, self.centre.dtype).view(1, h, w, 1, 2)
        colour = per_pixel(self.colour)
        opacity, conic = conic_of_cholesky(per_pixel(self.cholesky))
        return AnchoredGaussians(colour=colour, opacity=opacity, conic=conic, offset=per_pixel(self.centre) - anchors)


@dataclass
class ContinuousSRState:
    """What ``ContinuousSR.encode`` computes once per LR batch; every size renders from it.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        gaussians (ContinuousGaussians): the Gaussians (official parametrisation).
        table (GaussianTable): the same Gaussians laid out for the renderer (rule 'gsplat_sum'),
            padded for the window radius that keeps every term with alpha >= 1/255 (exact).
    """

    lq: torch.Tensor
    gaussians: ContinuousGaussians
    table: GaussianTable


@ARCH_REGISTRY.register()
class ContinuousSR(ArbitraryScaleArch):
    """ContinuousSR with the official heads; ``ContinuousSR()`` uses an EDSR-baseline encoder.

    The paper reports SwinIR only and the released model uses HAT (neither gives an EDSR-baseline
    setting), so the default pairs this package's EDSR-baseline encoder with the official heads,
    for comparisons with LIIF / GaussianSR on the same encoder (docs/continuoussr.md).

    Args:
        encoder (str): Encoder name for ``build_encoder`` ('edsr-baseline', 'rdn', 'swinir').
            Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options.
        num_feat (int): Channels F of the 4x feature map (each Gaussian reads 4F). Default: 64.
        embed_dim (int): Width of the covariance features and dictionary embeddings. Default: 512.
        colour_hidden (Sequence[int]): Colour MLP widths. Default: [512, 1024, 256, 128, 64].
        offset_hidden (Sequence[int]): Offset MLP widths. Default: [512, 1024, 256, 128, 64].
        dictionary_hidden (Sequence[int]): Dictionary embedding MLP widths. Default: [256, 512, 512, 512].
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        num_feat: int = 64,
        embed_dim: int = 512,
        colour_hidden: Sequence[int] = (512, 1024, 256, 128, 64),
        offset_hidden: Sequence[int] = (512, 1024, 256, 128, 64),
        dictionary_hidden: Sequence[int] = (256, 512, 512, 512),
    ):
        super().__init__()
        for name, value in (('num_feat', num_feat), ('embed_dim', embed_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.upsampler = FeatureUpsampler(self.encoder.out_channels, num_feat)
        vector = GAUSSIANS_PER_SIDE**2 * num_feat
        self.colour_mlp = init_mlp_like_official(build_mlp(vector, list(colour_hidden), 3, 'gelu'))
        self.offset_mlp = init_mlp_like_official(build_mlp(vector, list(offset_hidden), 2, 'gelu'))
        self.covariance_conv = nn.Conv2d(vector, embed_dim, 3, 1, 1)
        self.dictionary_embedding = init_mlp_like_official(build_mlp(3, list(dictionary_hidden), embed_dim, 'gelu'))
        self.register_buffer('dictionary', cholesky_dictionary(), persistent=False)
        self.max_radius = max_window_radius()

    def encoder_input(self, lq: torch.Tensor) -> torch.Tensor:
        """The official model feeds the [0, 1] image to its encoder as is."""
        return lq

    # ------------------------------------------------------------------ encoding
    def gaussian_vectors(self, feat: torch.Tensor) -> torch.Tensor:
        """Encoder features [B,C,h,w] -> one 4F-vector per Gaussian [B,4F,2h,2w]."""
        return F.pixel_unshuffle(self.upsampler(feat), GAUSSIANS_PER_SIDE)

    def gaussians_from_features(self, feat: torch.Tensor) -> ContinuousGaussians:
        """The Gaussians of encoder features [B,C,h,w]; in strips of LR rows when no gradient is needed."""
        h, w = feat.shape[-2:]
        rows_per_strip = max(1, HEAD_STRIP_GAUSSIANS // (GAUSSIANS_PER_SIDE**2 * w))
        if torch.is_grad_enabled() or is_tracing() or rows_per_strip >= h:
            return self.gaussians_from_vectors(self.gaussian_vectors(feat))
        parts = []
        for r0 in range(0, h, rows_per_strip):
            r1 = min(h, r0 + rows_per_strip)
            top, bottom = max(0, r0 - STRIP_HALO), min(h, r1 + STRIP_HALO)
            strip = self.gaussians_from_vectors(self.gaussian_vectors(feat[:, :, top:bottom]), first_row=top)
            keep = slice(GAUSSIANS_PER_SIDE * (r0 - top), GAUSSIANS_PER_SIDE * (r1 - top))
            parts.append([strip.centre[:, keep], strip.cholesky[:, keep], strip.colour[:, keep]])
        return ContinuousGaussians(*(torch.cat(column, dim=1) for column in zip(*parts)))

    def gaussians_from_vectors(self, vectors: torch.Tensor, first_row: int = 0) -> ContinuousGaussians:
        """The Gaussians of [B,4F,2h,2w] vectors (colour, dictionary-weighted Cholesky, drifted centre);
        ``first_row``: the LR row of the vectors' first row (strips of an image)."""
        b, _, rows, cols = vectors.shape
        colour = self.colour_mlp(vectors.permute(0, 2, 3, 1))
        activated = F.leaky_relu(vectors, LEAKY_SLOPE)
        drift = torch.tanh(self.offset_mlp(activated.permute(0, 2, 3, 1)))  # (x, y) in LR pixels
        cov_feat = self.covariance_conv(activated)
        embedding = self.dictionary_embedding(self.dictionary)  # [730, embed_dim]
        logits = torch.einsum('bchw,kc->bhwk', cov_feat, embedding)
        with torch.autocast(vectors.device.type, enabled=False):  # the factors set every conic: float32
            weights = torch.softmax(logits.float(), dim=-1)
            cholesky = weights @ self.dictionary.float() / DICTIONARY_UNITS_PER_LR_PIXEL
            grid = pixel_grid((rows, cols), vectors.device)
            # Grid point i of the 2h x 2w grid: i / 2 - 0.5 in LR pixels, the top-left corner of its
            # sub-pixel (the official grid 2 i / 2h - 1 in [-1, 1], its "- 1 / W" cancelling the
            # rasteriser's pixel-index convention); then the drift, (x, y) -> (row, col).
            centre = grid / GAUSSIANS_PER_SIDE - 0.5 + drift.float().flip(-1)
            if first_row:
                centre[..., 0] += first_row
        return ContinuousGaussians(centre=centre, cholesky=cholesky, colour=colour.float())

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> ContinuousSRState:
        """The Gaussians and their renderer table from the encoder features [B,C,h,w]."""
        gaussians = self.gaussians_from_features(feat)
        anchored = gaussians.anchored()
        # The window that keeps every term with alpha >= 1/255 (exact: the rule drops the rest);
        # a traced graph cannot read the data and takes the bound every field satisfies.
        radius = self.max_radius if is_tracing() else min(self.max_radius, window_radius(anchored, rule=RULE))
        return ContinuousSRState(lq=lq, gaussians=gaussians, table=anchored_gaussian_table(anchored, radius, RULE))

    def gaussians(self, lq: torch.Tensor) -> ContinuousGaussians:
        """The Gaussians of an LR batch [B,3,h,w] (for inspection and parity tests)."""
        return self.encode(lq).gaussians

    # ------------------------------------------------------------------ querying
    def query(self, state: ContinuousSRState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2].

        ``cell`` is not needed: in LR pixels the Gaussians do not depend on the output size
        (module docstring, "Scale"), so every point of every size reads the same field.
        """
        return evaluate_anchored_table(state.table, coord)


# ---------------------------------------------------------------------------- the method descriptor
def detect_continuoussr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """ContinuousSR's head widths (this module's names); None if they do not fit (utils/arch_detect.py)."""
    head = state.get('upsampler.conv_before_upsample.0.weight')
    conv = state.get('covariance_conv.weight')
    mlps = {name: mlp_shape(state, f'{name}.') for name in ('colour_mlp', 'offset_mlp', 'dictionary_embedding')}
    if head is None or conv is None or head.shape[1] != channels or any(m is None for m in mlps.values()):
        return None
    return {
        'num_feat': int(head.shape[0]),
        'embed_dim': int(conv.shape[0]),
        'colour_hidden': mlps['colour_mlp'][1],
        'offset_hidden': mlps['offset_mlp'][1],
        'dictionary_hidden': mlps['dictionary_embedding'][1],
    }


METHOD = register_method(
    Method(
        arch='ContinuousSR',
        marker='dictionary_embedding.',
        detect=detect_continuoussr,
        # The official heads at tiny widths; 4 Gaussians per LR pixel, rule 'gsplat_sum'.
        tiny={
            'encoder_opt': {'num_feat': 8, 'num_block': 1},
            'num_feat': 8,
            'embed_dim': 16,
            'colour_hidden': [16],
            'offset_hidden': [16],
            'dictionary_hidden': [16],
        },
        protocol='continuoussr',
        default_model='our EDSR-baseline configuration',
        description='EDSR-baseline encoder and the official Gaussian heads',
        # No schedule: the paper states none and no training code is public (docs/continuoussr.md).
        order=40,
    )
)
