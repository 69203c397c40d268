"""A-LIIF (Li, Dai, Li, Zou, Xia, "Adaptive Local Implicit Image Function for Arbitrary-Scale
Super-Resolution", ICIP 2022).

LIIF with an adaptive decoder: instead of one MLP shared by every pixel, K MLPs of the same shape
(the *basis*, ``num_basis`` of them) are mixed per query. An *expansion* MLP reads the same input as
the decoder (the 3x3-unfolded latent code of the nearest LR pixel, the relative coordinate and the
cell, both in LIIF's units) and gives K coefficients, L2-normalised; every layer of the decoder is
then the coefficient-weighted sum of the K bases' weights and biases, i.e. ``sum_k c_k (W_k x +
b_k)``. LIIF's local ensemble blends the four nearest LR pixels; there is no image skip.

``ALIIF`` reproduces the official ``query_rgb`` in its choices (LIIF's eps shift, clamped shifted
coordinates, nearest ``grid_sample``, diagonally swapped area weights, cell x LR size): the
official model, converted by ``gaussiansr-convert-aliif``, reproduces the official outputs
(``tests/test_aliif.py``, docs/aliif.md). Two reorderings of the same sums differ from the official
code by float rounding only: the first layers of the expansion MLP and of the bases are applied to
the latent codes once per LR pixel (as ``LIIF`` does), and each layer mixes the K bases' outputs
instead of forming a per-query weight matrix first (which the official code holds in memory,
[queries, out, in] per layer).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

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
from gaussiansr_arch.archs.lte_arch import ENSEMBLE_SHIFTS
from gaussiansr_arch.utils.arch_detect import indices, mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method


class BasisMLP(nn.Module):
    """K MLPs of one shape (ReLU between layers), mixed per query by coefficients.

    ``weights.i`` is [K, out, in] and ``biases.i`` [K, out] for layer i. Initialised as the official
    basis: every weight and bias uniform in +-1 / sqrt(out * in) (Kaiming-uniform, a = sqrt(5), of
    the official flat [K, out * in] tensors).

    Args:
        num_basis (int): K.
        in_dim (int): Input width.
        hidden (Sequence[int]): Hidden widths.
        out_dim (int): Output width.
    """

    def __init__(self, num_basis: int, in_dim: int, hidden: Sequence[int], out_dim: int):
        super().__init__()
        widths = [in_dim, *hidden, out_dim]
        shapes = list(zip(widths[1:], widths[:-1]))
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(num_basis, o, i)) for o, i in shapes)
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(num_basis, o)) for o, _ in shapes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight, bias in zip(self.weights, self.biases):
            bound = 1 / math.sqrt(weight.shape[1] * weight.shape[2])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    @staticmethod
    def mix(coeff: torch.Tensor, per_basis: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``sum_k coeff_k (per_basis_k + bias_k)``: [..., K], [..., K, out], [K, out] -> [..., out]."""
        return torch.einsum('...k,...ko->...o', coeff, per_basis) + coeff @ bias

    def layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Every basis' layer ``i`` without bias: [..., in] -> [..., K, out]."""
        weight = self.weights[i]
        return F.linear(x, weight.reshape(-1, weight.shape[-1])).unflatten(-1, weight.shape[:2])

    def finish(self, coeff: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """The mixed MLP from the bases' first-layer outputs ``first`` [..., K, out0] (bias not added)."""
        x = self.mix(coeff, first, self.biases[0])
        for i in range(1, len(self.weights)):
            x = self.mix(coeff, self.layer(i, torch.relu(x)), self.biases[i])
        return x


@dataclass
class ALIIFState:
    """What ``ALIIF.encode`` computes once per LR image.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        feat (Tensor): [B,E+K*H+2,h,w] per LR pixel: the expansion MLP's first layer applied to the
            unfolded latent code (E channels), every basis' first layer applied to it (K*H), and the
            pixel's coordinates (2), so that one nearest ``grid_sample`` fetches all three.
    """

    lq: torch.Tensor
    feat: torch.Tensor


@ARCH_REGISTRY.register()
class ALIIF(ArbitraryScaleArch):
    """Adaptive local implicit image function: LIIF decoded by a per-query mixture of K MLPs.

    ``ALIIF()`` is the paper's EDSR-baseline-A-LIIF (the official
    ``train_edsr-baseline-A-liif.yaml``: 10 bases of an MLP [16] x 4, expansion MLP [256] x 4).
    Inputs/outputs are RGB in [0,1]; the (x - 0.5) / 0.5 normalisation is done inside. The latent
    code is always unfolded (3x3) and the cell always decoded, as the official decoder requires.

    Args:
        encoder (str): Encoder name for ``build_encoder``. Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options (num_feat, num_block ...).
        num_basis (int): K, the number of basis MLPs (the expansion MLP's outputs). Default: 10.
        hidden (Sequence[int]): Hidden widths of the basis MLPs (ReLU between). Default: [16]*4.
        expansion_hidden (Sequence[int]): Hidden widths of the expansion MLP. Default: [256]*4.
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        num_basis: int = 10,
        hidden: Sequence[int] = (16,) * 4,
        expansion_hidden: Sequence[int] = (256,) * 4,
    ):
        super().__init__()
        if num_basis < 1:
            raise ValueError(f'num_basis must be >= 1, got {num_basis!r}')
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.code_dim = self.encoder.out_channels * 9
        in_dim = self.code_dim + 4  # [unfolded code, rel_coord, rel_cell]
        self.expansion = build_mlp(in_dim, list(expansion_hidden), num_basis, 'relu')
        self.basis = BasisMLP(num_basis, in_dim, list(hidden), 3)

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> ALIIFState:
        """First-layer projections (expansion MLP, every basis) of the latent codes, with their LR coordinates."""
        feat = unfold3x3(feat)
        # Both first layers are linear in the latent code: applied once per LR pixel instead of
        # once per query and shift, and fewer values gathered per query. Same function.
        w_basis = self.basis.weights[0][..., : self.code_dim].reshape(-1, self.code_dim)
        weight = torch.cat([self.expansion[0].weight[:, : self.code_dim], w_basis])
        proj = torch.einsum('oc,bchw->bohw', weight, feat)
        return ALIIFState(lq=lq, feat=torch.cat([proj, feature_coord_map(feat)], dim=1))

    def query(self, state: ALIIFState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output cell ``cell`` [B,Q,2]."""
        h, w = state.feat.shape[-2:]
        lr_size = size_tensor((h, w), coord)  # not float(h): h, w stay symbolic in an ONNX export
        half_pixel = 1 / size_tensor((h, w), coord, torch.float64)  # in double, as Python's 1 / h
        rel_cell = cell * lr_size
        first_e, first_b = self.expansion[0], self.basis.weights[0]
        e_dim, k_h = first_e.out_features, first_b.shape[0] * first_b.shape[1]

        preds, areas = [], []
        for vx, vy in ENSEMBLE_SHIFTS:
            # The offset in double rounded once to the coordinates' dtype, one add, then the clamp (as LIIF).
            offset = (half_pixel * half_pixel.new_tensor([vx, vy]) + EPS_SHIFT).to(coord.dtype)
            sampled = sample_nearest(state.feat, (coord + offset).clamp(-COORD_CLAMP, COORD_CLAMP))
            q_e, q_b, q_coord = sampled[..., :e_dim], sampled[..., e_dim : e_dim + k_h], sampled[..., e_dim + k_h :]
            rel_coord = (coord - q_coord) * lr_size  # relative to the *unshifted* query, 2 per LR pixel
            extra = torch.cat([rel_coord, rel_cell], dim=-1)
            # = expansion(cat([q_feat, rel_coord, rel_cell])), code part precomputed in encode
            hidden = q_e + F.linear(extra, first_e.weight[:, self.code_dim :], first_e.bias)
            coeff = F.normalize(self.expansion[1:](hidden), dim=-1)
            first = q_b.unflatten(-1, first_b.shape[:2]) + F.linear(
                extra, first_b[..., self.code_dim :].reshape(k_h, -1)
            ).unflatten(-1, first_b.shape[:2])
            preds.append(self.basis.finish(coeff, first))
            areas.append((rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9)

        total = torch.stack(areas).sum(dim=0)
        out = 0
        # Each pixel is weighted by the area to the *opposite* one (the list reversed), summed in LIIF's order.
        for pred, area in zip(preds, areas[::-1]):
            out = out + pred * (area / total).unsqueeze(-1)
        return out * 0.5 + 0.5


# ---------------------------------------------------------------------------- the method descriptor
def detect_aliif(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """A-LIIF's options from ``basis.*`` (K MLPs to RGB reading the unfolded code + 4) and
    ``expansion.*`` (the same input to K coefficients); None if they do not fit."""
    layers = indices(state, r'basis\.weights\.(\d+)')
    if not layers or layers != list(range(len(layers))):
        return None
    weights = [state[f'basis.weights.{i}'] for i in layers]
    if any(w.dim() != 3 or w.shape[0] != weights[0].shape[0] for w in weights):
        return None
    if any(b.shape[1] != a.shape[2] for a, b in zip(weights[1:], weights[:-1])) or weights[-1].shape[1] != 3:
        return None
    num_basis, in_dim = int(weights[0].shape[0]), int(weights[0].shape[2])
    mlp = mlp_shape(state, 'expansion.')
    if in_dim != 9 * channels + 4 or mlp is None or mlp[0] != in_dim or mlp[2] != num_basis:
        return None
    return {'num_basis': num_basis, 'hidden': [int(w.shape[1]) for w in weights[:-1]], 'expansion_hidden': mlp[1]}


ALIIF_METHOD = register_method(
    Method(
        arch='ALIIF',
        marker='basis.',
        detect=detect_aliif,
        tiny={**TINY_ENCODER, 'num_basis': 3, 'hidden': [8, 8], 'expansion_hidden': [16]},
        protocol='liif',  # A-LIIF reports LIIF's benchmarks under LIIF's evaluation
        default_model='the official EDSR-baseline-A-LIIF',
        description='EDSR-baseline encoder, 10 basis MLPs [16] x 4 mixed per query by an expansion MLP [256] x 4',
        schedule=ReferenceSchedule(
            2_000_000, 8, 48, 'A-LIIF (Li et al., ICIP 2022; 1000 epochs x 2000 iterations of batch 8)'
        ),
        official_weights=False,  # no official checkpoint is released
        order=17,
    )
)
