"""LTE (Lee & Jin, "Local Texture Estimator for Implicit Representation Function", CVPR 2022).

The local texture estimator turns the encoder's LR features into, per LR pixel, amplitudes
(``coef``, a 3x3 conv) and 2-D frequencies (``freq``, a 3x3 conv); a query's phase comes from its
cell (``phase``, a bias-free Linear). At a query the nearest LR pixel's amplitudes and frequencies
give the Fourier features ``coef * [cos(pi g), sin(pi g)]`` with ``g = freq . rel_coord + phase(cell)``,
and an MLP decodes them to RGB. The four nearest LR pixels are blended by LIIF's local ensemble,
and the LR image, bilinearly interpolated at the query (border padding), is added.

``LTE`` reproduces the official ``query_rgb`` in its choices (LIIF's eps shift, clamped shifted
coordinates, nearest ``grid_sample``, diagonally swapped area weights, cell x LR size, the bilinear
LR skip in the encoder's [-1, 1] range): the official model, converted by ``gaussiansr-convert-lte``,
reproduces the official outputs (``tests/test_lte.py``, docs/lte.md). The amplitudes, frequencies
and LR-pixel coordinates are computed once per encoding and fetched by one nearest sampling.

The estimator's math is GaussianSR's ``lte`` decoder (``archs/decoders.LTEDecoder.decode``, the
same authors' code) applied to LR features instead of rendered ones.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import size_tensor
from gaussiansr_arch.archs.decoders import LTEDecoder
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.interpolation import sample_grid
from gaussiansr_arch.archs.liif_arch import COORD_CLAMP, EPS_SHIFT, TINY_ENCODER, feature_coord_map, sample_nearest
from gaussiansr_arch.utils.arch_detect import mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method

# The local ensemble's shifts in LIIF's (and LTE's) loop order: rows outer, columns inner.
ENSEMBLE_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass
class LTEState:
    """What ``LTE.encode`` computes once per LR image.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        feat (Tensor): [B,2F+2,h,w] per LR pixel: the amplitudes (F channels), the frequencies
            (F channels, (row, col) pairs) and the pixel's coordinates (2), so that one nearest
            ``grid_sample`` fetches all three.
    """

    lq: torch.Tensor
    feat: torch.Tensor


@ARCH_REGISTRY.register()
class LTE(ArbitraryScaleArch):
    """Local texture estimator: Fourier features of the nearest LR pixel, decoded by an MLP.

    ``LTE()`` is the paper's EDSR-baseline-LTE (the official ``train_edsr-baseline-lte.yaml``).
    Inputs/outputs are RGB in [0,1]; LTE's (x - 0.5) / 0.5 normalisation is done inside.

    Args:
        encoder (str): Encoder name for ``build_encoder``. Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options (num_feat, num_block ...).
        hidden_dim (int): Channels of the amplitudes and of the frequencies (half as many 2-D
            frequencies); the MLP's input width. Default: 256.
        hidden (Sequence[int]): MLP hidden widths (ReLU between). Default: [256]*3.
        scale_max (float | None): The cell fed to the estimator is at most that of x ``scale_max``
            (per axis): the official evaluation's cell clip beyond the training scales
            (``test.py``/``demo.py``: ``cell * max(scale / scale_max, 1)``), a no-op for scales up
            to ``scale_max``. None feeds the cell as given (the official ``forward``). Default: 4.
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        hidden_dim: int = 256,
        hidden: Sequence[int] = (256,) * 3,
        scale_max: float | None = 4.0,
    ):
        super().__init__()
        if scale_max is not None and not scale_max > 0:
            raise ValueError(f'scale_max must be > 0 or None, got {scale_max!r}')
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.hidden_dim = hidden_dim
        self.scale_max = scale_max
        self.estimator = LTEDecoder(self.encoder.out_channels, num_freq=hidden_dim, hidden=list(hidden), act='relu')

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> LTEState:
        """Amplitudes, frequencies and LR-pixel coordinates of every LR pixel."""
        coef, freq = self.estimator.coef(feat), self.estimator.freq(feat)
        return LTEState(lq=lq, feat=torch.cat([coef, freq, feature_coord_map(feat)], dim=1))

    def query(self, state: LTEState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output cell ``cell`` [B,Q,2]."""
        h, w = state.feat.shape[-2:]
        lr_size = size_tensor((h, w), coord)  # not float(h): h, w stay symbolic in an ONNX export
        half_pixel = 1 / size_tensor((h, w), coord, torch.float64)  # in double, as Python's 1 / h
        rel_cell = cell * lr_size
        if self.scale_max is not None:
            rel_cell = rel_cell.clamp(min=2 / self.scale_max)
        f = self.hidden_dim

        preds, areas = [], []
        for vx, vy in ENSEMBLE_SHIFTS:
            # The offset in double rounded once to the coordinates' dtype, one add, then the clamp (as LTE).
            offset = (half_pixel * half_pixel.new_tensor([vx, vy]) + EPS_SHIFT).to(coord.dtype)
            sampled = sample_nearest(state.feat, (coord + offset).clamp(-COORD_CLAMP, COORD_CLAMP))
            coef, freq, q_coord = sampled[..., :f], sampled[..., f : 2 * f], sampled[..., 2 * f :]
            rel_coord = (coord - q_coord) * lr_size  # relative to the *unshifted* query, 2 per LR pixel
            preds.append(self.estimator.decode(coef, freq, rel_coord, rel_cell))
            areas.append((rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9)

        total = torch.stack(areas).sum(dim=0)
        out = 0
        # Each pixel is weighted by the area to the *opposite* one (the list reversed), summed in LTE's order.
        for pred, area in zip(preds, areas[::-1]):
            out = out + pred * (area / total).unsqueeze(-1)
        out = out + sample_grid(self.encoder_input(state.lq), coord, 'bilinear')
        return out * 0.5 + 0.5


# ---------------------------------------------------------------------------- the method descriptor
def detect_lte(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """LTE's options from ``estimator.*`` (amplitude conv reading the encoder, MLP to RGB); None if they do not fit."""
    coef = state.get('estimator.coef.weight')
    mlp = mlp_shape(state, 'estimator.mlp.')
    if coef is None or coef.dim() != 4 or int(coef.shape[1]) != channels or mlp is None:
        return None
    in_dim, hidden, out_dim = mlp
    if in_dim != coef.shape[0] or out_dim != 3:
        return None
    return {'hidden_dim': in_dim, 'hidden': hidden}


LTE_METHOD = register_method(
    Method(
        arch='LTE',
        marker='estimator.',
        detect=detect_lte,
        tiny={**TINY_ENCODER, 'hidden_dim': 16, 'hidden': [16]},
        protocol='liif',  # LTE reports LIIF's benchmarks under LIIF's evaluation
        default_model='the official EDSR-baseline-LTE',
        description='EDSR-baseline encoder, local texture estimator of 256 channels, MLP [256] x 3, bilinear LR skip',
        schedule=ReferenceSchedule(1_000_000, 16, 48, 'LTE (Lee & Jin, CVPR 2022; 1000 epochs x 1000 iterations)'),
        official_weights=True,  # the test files read the converted official checkpoint
        order=15,
    )
)
