"""ITSRN (Yang et al., "Implicit Transformer Network for Screen Content Image Continuous
Super-Resolution", NeurIPS 2021).

The implicit transformer predicts, from a query's position relative to an LR pixel and from the
scale, a [9C, 3] linear map that turns that pixel's 3x3-unfolded features (the value) into RGB:
``kernel_mlp(rel_coord, scale token)``, applied per query (a matrix product, as Meta-SR's
weight prediction but with LIIF's coordinates and a GELU MLP). A scalar ``score_mlp(rel_coord)``
is added to the three channels. The four LR pixels around the query (LIIF's local ensemble) each
give such a prediction, and ``ensemble_mlp`` maps the four predictions of each channel to that
channel's output: a learnt blend instead of LIIF's area weights. There is no LR skip.

``ITSRN`` reproduces the official ``ITNSR.query_rgb`` (with its defaults ``feat_unfold``,
``local_ensemble``, ``scale_token`` on and no coordinate embedding) in its choices: the scale
fed to it is ITSRN's ``1 / H`` per axis (our cell / 2), the ensemble's shift is not LIIF's half
pixel but ``(1 - 1/H) / (h - 1)`` (in [-1, 1] units) computed as the official does, plus LIIF's eps,
then the clamp; nearest ``grid_sample``; relative coordinate and scale token x LR size. The
official code takes the shift from the first query of each image; here it is per query (all the
queries of an image share one cell in the official data and evaluation, where both are the same).
The official model, converted by ``gaussiansr-convert-itsrn``, reproduces the official outputs
(``tests/test_itsrn.py``, docs/itsrn.md).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import size_tensor
from gaussiansr_arch.archs.decoders import build_mlp
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.liif_arch import (
    COORD_CLAMP,
    EPS_SHIFT,
    TINY_ENCODER,
    feature_coord_map,
    sample_nearest,
    unfold3x3,
)
from gaussiansr_arch.utils.arch_detect import mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method

# The local ensemble's shifts in the official loop order: rows outer, columns inner.
ENSEMBLE_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass
class ITSRNState:
    """What ``ITSRN.encode`` computes once per LR image.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        feat (Tensor): [B,9C+2,h,w] the 3x3-unfolded features (the values) with the LR pixels'
            coordinates appended as the last two channels, so one nearest ``grid_sample`` fetches both.
    """

    lq: torch.Tensor
    feat: torch.Tensor


@ARCH_REGISTRY.register()
class ITSRN(ArbitraryScaleArch):
    """Implicit transformer: per-query [9C, 3] maps of the unfolded features, blended by an MLP.

    ``ITSRN()`` has the official model's head (``train_itnsr.yaml``: kernel MLP [256] x 4, score
    and ensemble MLPs [256], GELU) on an EDSR-baseline encoder (the official config trains RDN:
    ``encoder: rdn``). Inputs/outputs are RGB in [0,1]; the official (x - 0.5) / 0.5 normalisation
    of input and output is done inside.

    Args:
        encoder (str): Encoder name for ``build_encoder``. Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options (num_feat, num_block ...).
        hidden (Sequence[int]): Hidden widths of the kernel MLP (official ``imnet``):
            (rel_coord, scale token) -> [9C, 3]. Default: [256]*4.
        score_hidden (Sequence[int]): Hidden widths of the score MLP (official ``Score``):
            rel_coord -> 1. Default: [256].
        ensemble_hidden (Sequence[int]): Hidden widths of the ensemble MLP (official ``Weight``):
            the four predictions of a channel -> that channel. Default: [256].
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        hidden: Sequence[int] = (256,) * 4,
        score_hidden: Sequence[int] = (256,),
        ensemble_hidden: Sequence[int] = (256,),
    ):
        super().__init__()
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.value_dim = self.encoder.out_channels * 9
        self.kernel_mlp = build_mlp(4, list(hidden), self.value_dim * 3, 'gelu')
        self.score_mlp = build_mlp(2, list(score_hidden), 1, 'gelu')
        self.ensemble_mlp = build_mlp(len(ENSEMBLE_SHIFTS), list(ensemble_hidden), 1, 'gelu')

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> ITSRNState:
        """Unfolded features with their LR pixels' coordinates appended."""
        feat = unfold3x3(feat)
        return ITSRNState(lq=lq, feat=torch.cat([feat, feature_coord_map(feat)], dim=1))

    def query(self, state: ITSRNState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output cell ``cell`` [B,Q,2]."""
        b, q = coord.shape[:2]
        h, w = state.feat.shape[-2:]
        lr_size = size_tensor((h, w), coord)  # not float(h): h, w stay symbolic in an ONNX export
        scale = cell * 0.5  # ITSRN's scale: 1 / H per axis (exact: a power of two)
        # The official shift, as it computes it: r = 1 / ((h - 1) / (1 - scale)), in the coordinates' dtype.
        shift = ((1 - scale).reciprocal() * (lr_size - 1)).reciprocal()
        scale_token = scale * lr_size  # the output pixel in LR pixels (1 / s)

        preds = []
        for vx, vy in ENSEMBLE_SHIFTS:
            offset = shift * shift.new_tensor([vx, vy]) + EPS_SHIFT
            sampled = sample_nearest(state.feat, (coord + offset).clamp(-COORD_CLAMP, COORD_CLAMP))
            value, q_coord = sampled[..., :-2], sampled[..., -2:]
            rel_coord = (coord - q_coord) * lr_size  # relative to the *unshifted* query, 2 per LR pixel
            kernel = self.kernel_mlp(torch.cat([rel_coord, scale_token], dim=-1))
            pred = torch.bmm(value.reshape(b * q, 1, self.value_dim), kernel.view(b * q, self.value_dim, 3))
            preds.append(pred.view(b, q, 3) + self.score_mlp(rel_coord))
        out = self.ensemble_mlp(torch.stack(preds, dim=-1)).squeeze(-1)
        return out * 0.5 + 0.5


# ---------------------------------------------------------------------------- the method descriptor
def detect_itsrn(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """ITSRN's options from its three MLPs' shapes; None if they do not fit."""
    kernel = mlp_shape(state, 'kernel_mlp.')
    score = mlp_shape(state, 'score_mlp.')
    ensemble = mlp_shape(state, 'ensemble_mlp.')
    if kernel is None or score is None or ensemble is None:
        return None
    if kernel[0] != 4 or kernel[2] != 27 * channels or score[::2] != (2, 1) or ensemble[::2] != (4, 1):
        return None
    return {'hidden': kernel[1], 'score_hidden': score[1], 'ensemble_hidden': ensemble[1]}


ITSRN_METHOD = register_method(
    Method(
        arch='ITSRN',
        marker='kernel_mlp.',
        detect=detect_itsrn,
        tiny={**TINY_ENCODER, 'hidden': [16], 'score_hidden': [8], 'ensemble_hidden': [8]},
        protocol='liif',  # its natural-image rows are in LIIF's tables (GaussianSR's Tables 1-2)
        description='EDSR-baseline encoder, implicit transformer: kernel MLP [256] x 4 to a [576, 3] map of the '
        'unfolded features, score and ensemble MLPs [256], GELU',
        schedule=ReferenceSchedule(
            1_000_000, 16, 48, 'ITSRN (Yang et al., NeurIPS 2021; 1000 epochs x 1000 iterations, lr 2e-4)'
        ),
        order=16,
    )
)
