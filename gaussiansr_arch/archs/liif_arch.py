"""LIIF (Chen, Liu, Wang, CVPR 2021) and Meta-SR (as re-implemented by LIIF) baselines.

Both are written against the package's :class:`ArbitraryScaleArch` interface, so they train,
validate and render exactly like GaussianSR (same datasets, model, tools). ``LIIF`` reproduces
the official ``query_rgb`` bit for bit in its choices (eps shift, nearest ``grid_sample``,
clamped shifted coordinates, diagonally swapped area weights, cell scaled by the LR size): the
official EDSR-baseline-LIIF checkpoint, converted by ``gaussiansr-convert-liif``, reproduces
the official outputs to ~1e-5 (``tests/test_liif.py``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import make_coord, size_tensor
from gaussiansr_arch.archs.decoders import build_mlp
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.interpolation import check_image_skip, image_skip_at
from gaussiansr_arch.utils.arch_detect import mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method

# LIIF keeps shifted coordinates this far inside [-1, 1] so that nearest sampling never
# falls off the feature map (border pixels are then picked instead).
COORD_CLAMP = 1 - 1e-6
# LIIF nudges every shifted coordinate by this much (local ensemble only) so that a query
# lying exactly on a boundary between two LR pixels picks the same one on every platform.
EPS_SHIFT = 1e-6


@dataclass
class LIIFState:
    """What ``LIIF.encode`` / ``MetaSR.encode`` compute once per LR image.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        feat (Tensor): [B,C+2,h,w] per-LR-pixel values the decoder gathers (LIIF: the first MLP
            layer applied to the latent code, C = hidden width; MetaSR: the 3x3-unfolded code)
            with the coordinates of the LR pixels appended as the last two channels, so one
            nearest ``grid_sample`` fetches both.
    """

    lq: torch.Tensor
    feat: torch.Tensor


def unfold3x3(feat: torch.Tensor) -> torch.Tensor:
    """Concatenate every pixel's 3x3 neighbourhood (zero padded): [B,C,h,w] -> [B,9C,h,w].

    Channel order is ``c * 9 + k`` (``F.unfold``'s), which LIIF's trained weights expect.
    """
    b, c, h, w = feat.shape
    return F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)


def feature_coord_map(feat: torch.Tensor, offset: Sequence[float] | torch.Tensor = (0.0, 0.0)) -> torch.Tensor:
    """Coordinates (row, col) of the LR pixel centres plus ``offset``: [B,2,h,w].

    ``offset`` (numbers or a [2] tensor) is rounded once from double to the coordinates' dtype.

    Float32 even for bf16/fp16 features (mixed precision): bf16 spaces values near 1 by 2^-8,
    which, times the LR size in the relative coordinate, would move queries by whole LR pixels.
    """
    h, w = feat.shape[-2:]
    dtype = torch.float32 if feat.dtype in (torch.float16, torch.bfloat16) else feat.dtype
    coord = make_coord((h, w), device=feat.device, dtype=dtype).view(h, w, 2)
    coord = coord + torch.as_tensor(offset, dtype=torch.float64, device=coord.device).to(dtype)
    return coord.permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, h, w)


def sample_nearest(feat: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Nearest LR pixel of [B,C,h,w] at [B,Q,2] (row, col) coordinates -> [B,Q,C].

    ``align_corners=False`` as LIIF: pixel i of n covers [-1 + 2i/n, -1 + 2(i+1)/n].
    """
    grid = coord.flip(-1).unsqueeze(1)  # grid_sample wants (x, y)
    out = F.grid_sample(feat, grid, mode='nearest', align_corners=False)
    return out[:, :, 0, :].transpose(1, 2)


@ARCH_REGISTRY.register()
class LIIF(ArbitraryScaleArch):
    """Local implicit image function: an MLP decodes RGB from the nearest latent code.

    ``LIIF()`` is the paper's EDSR-baseline-LIIF (1.57M parameters). Inputs/outputs are RGB
    in [0,1]; the (x - 0.5) / 0.5 normalisation LIIF's training scripts apply is done inside.

    Args:
        encoder (str): Encoder name for ``build_encoder`` ('edsr-baseline', or any other
            registered there, e.g. 'rdn'). Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options (num_feat, num_block ...).
        hidden (Sequence[int]): MLP hidden widths (ReLU between). Default: [256]*4.
        feat_unfold (bool): Latent code = 3x3 neighbourhood of features. Default: True.
        local_ensemble (bool): Blend the 4 nearest codes by opposite-corner areas. Default: True.
        cell_decode (bool): Feed the output cell (x LR size) to the MLP. Default: True.
        image_skip (str): LR image interpolation added to the output ('bilinear', 'bicubic'),
            not in LIIF: only so that comparisons with GaussianSR's skip variant change one
            thing. Default: 'none' (official LIIF).
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        hidden: Sequence[int] = (256,) * 4,
        feat_unfold: bool = True,
        local_ensemble: bool = True,
        cell_decode: bool = True,
        image_skip: str = 'none',
    ):
        super().__init__()
        self.image_skip = check_image_skip(image_skip)
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.feat_unfold, self.local_ensemble, self.cell_decode = feat_unfold, local_ensemble, cell_decode
        self.code_dim = self.encoder.out_channels * (9 if feat_unfold else 1)
        self.imnet = build_mlp(self.code_dim + 2 + (2 if cell_decode else 0), list(hidden), 3, 'relu')

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> LIIFState:
        """First-layer projections of the latent codes, with their LR coordinates."""
        if self.feat_unfold:
            feat = unfold3x3(feat)
        # The MLP's first layer is linear in the latent code: apply its code columns once per
        # LR pixel here instead of once per query and shift (4 x Q x 576 x 256 MACs per image,
        # ~40% of the work), and gather 256 instead of 576 values per query. Same function.
        first = self.imnet[0]
        proj = torch.einsum('oc,bchw->bohw', first.weight[:, : self.code_dim], feat)
        return LIIFState(lq=lq, feat=torch.cat([proj, feature_coord_map(feat)], dim=1))

    def sample_projected_code(self, state: LIIFState, coord: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First-layer projection of the nearest latent code [B,Q,hidden] and that code's LR coordinate [B,Q,2]."""
        sampled = sample_nearest(state.feat, coord)
        return sampled[..., :-2], sampled[..., -2:]

    def query(self, state: LIIFState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output cell ``cell`` [B,Q,2]."""
        h, w = state.feat.shape[-2:]
        lr_size = size_tensor((h, w), coord)  # not float(h): h, w stay symbolic in an ONNX export
        if self.local_ensemble:
            # LIIF's loop order: vx (rows) outer, vy (cols) inner.
            shifts, eps = [(-1, -1), (-1, 1), (1, -1), (1, 1)], EPS_SHIFT
        else:
            shifts, eps = [(0, 0)], 0.0
        # half an LR pixel in [-1, 1] units, in double as Python's 1 / h
        half_pixel = 1 / size_tensor((h, w), coord, torch.float64)
        rel_cell = cell * lr_size if self.cell_decode else None
        first, rest = self.imnet[0], self.imnet[1:]

        preds, areas = [], []
        for vx, vy in shifts:
            # The offset in double rounded once to float32 (LIIF's Python-float offset), one float32
            # add, then the clamp: as LIIF does.
            offset = (half_pixel * half_pixel.new_tensor([vx, vy]) + eps).to(coord.dtype)
            shifted = (coord + offset).clamp(-COORD_CLAMP, COORD_CLAMP)
            q_proj, q_coord = self.sample_projected_code(state, shifted)
            # relative to the *unshifted* query, x LR size (LIIF's units: 2 per LR pixel)
            rel_coord = (coord - q_coord) * lr_size
            extra = torch.cat([rel_coord, rel_cell], dim=-1) if rel_cell is not None else rel_coord
            # = imnet(cat([q_feat, rel_coord, rel_cell])), code part precomputed in encode
            preds.append(rest(q_proj + F.linear(extra, first.weight[:, self.code_dim :], first.bias)))
            areas.append((rel_coord[..., 0] * rel_coord[..., 1]).abs() + 1e-9)

        total = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:
            # Each code is weighted by the area of the rectangle to the *opposite* code:
            # LIIF swaps areas 0<->3 and 1<->2, i.e. reverses the list.
            areas = areas[::-1]
        out = 0
        for pred, area in zip(preds, areas):  # same summation order as LIIF (float parity)
            out = out + pred * (area / total).unsqueeze(-1)
        if self.image_skip != 'none':
            out = out + image_skip_at(self.encoder_input(state.lq), coord, self.image_skip)
        return out * 0.5 + 0.5


@ARCH_REGISTRY.register()
class MetaSR(ArbitraryScaleArch):
    """Meta-SR's Meta-Upscale (Hu et al., CVPR 2019) as re-implemented in LIIF's code.

    A weight-prediction MLP maps (offset to the nearest LR pixel, 1/scale) to a per-query
    [9C, 3] filter applied to the 3x3-unfolded features of that pixel. As LIIF's version, the
    query point is the *top-left corner* of its output pixel and the LR positions are the
    top-left corners of the LR pixels; only the row cell enters as the scale input.

    Args:
        encoder (str): Encoder name for ``build_encoder``. Default: 'edsr-baseline'.
        encoder_opt (dict | None): Encoder options.
        hidden (Sequence[int]): Weight-prediction MLP hidden widths. Default: [256].
    """

    def __init__(self, encoder: str = 'edsr-baseline', encoder_opt: dict | None = None, hidden: Sequence[int] = (256,)):
        super().__init__()
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.code_dim = self.encoder.out_channels * 9
        self.imnet = build_mlp(3, list(hidden), self.code_dim * 3, 'relu')

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> LIIFState:
        """Unfolded features with their LR pixels' top-left corners appended."""
        feat = unfold3x3(feat)
        h, w = feat.shape[-2:]
        # -1 / h in double (as Python's), from a tensor: h, w stay symbolic in an ONNX export
        corners = feature_coord_map(feat, -1 / size_tensor((h, w), feat, torch.float64))
        return LIIFState(lq=lq, feat=torch.cat([feat, corners], dim=1))

    def query(self, state: LIIFState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] with output cell ``cell`` [B,Q,2]."""
        h, w = state.feat.shape[-2:]
        corner = coord - cell / 2  # top-left corner of the output pixel
        sampled = sample_nearest(state.feat, (corner + EPS_SHIFT).clamp(-COORD_CLAMP, COORD_CLAMP))
        q_feat, q_coord = sampled[..., :-2], sampled[..., -2:]
        half_size = size_tensor((h, w), corner) / 2  # not h / 2: h, w stay symbolic in an ONNX export
        rel_coord = (corner - q_coord) * half_size  # in LR pixels
        inv_scale = cell[..., :1] * half_size[0]  # 1 / scale (rows)
        weights = self.imnet(torch.cat([rel_coord, inv_scale], dim=-1))
        weights = weights.view(*coord.shape[:2], self.code_dim, 3)
        out = torch.einsum('bqc,bqcr->bqr', q_feat, weights)
        return out * 0.5 + 0.5


# ---------------------------------------------------------------------------- the method descriptors
def detect_liif(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """LIIF's options from ``imnet.*`` ending in 3 outputs; None if they do not fit (utils/arch_detect.py)."""
    mlp = mlp_shape(state, 'imnet.')
    if mlp is None or mlp[2] != 3:
        return None
    in_dim, hidden, _ = mlp
    # The first layer reads [latent code (C, or 9C unfolded), rel_coord (2), rel_cell (2, cell_decode)].
    for feat_unfold in (True, False):
        code = channels * (9 if feat_unfold else 1)
        if in_dim - 2 - code in (0, 2):
            return {
                'hidden': hidden,
                'feat_unfold': feat_unfold,
                'local_ensemble': True,
                'cell_decode': in_dim - 2 - code == 2,
            }
    return None


def detect_metasr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """MetaSR's options from ``imnet.*`` mapping (rel_coord, 1/scale) to a [9C, 3] filter; None if they do not fit."""
    mlp = mlp_shape(state, 'imnet.')
    if mlp is None or mlp[0] != 3 or mlp[2] != 27 * channels:
        return None
    return {'hidden': mlp[1]}


TINY_ENCODER = {'encoder': 'edsr-baseline', 'encoder_opt': {'num_feat': 8, 'num_block': 1}}
LIIF_METHOD = register_method(
    Method(
        arch='LIIF',
        marker='imnet.',
        detect=detect_liif,
        tiny={**TINY_ENCODER, 'hidden': [16, 16]},
        protocol='liif',
        default_model='the official EDSR-baseline-LIIF',
        description='EDSR-baseline encoder, MLP [256] x 4, all three LIIF options on',
        schedule=ReferenceSchedule(1_000_000, 16, 48, 'LIIF (Chen et al., CVPR 2021; 1000 epochs x 1000 iterations)'),
        image_skip=True,
        official_weights=True,  # the test files read the converted official checkpoint
        order=10,
    )
)
METASR_METHOD = register_method(
    Method(
        arch='MetaSR',
        marker='imnet.',
        detect=detect_metasr,
        tiny={**TINY_ENCODER, 'hidden': [16]},
        protocol='liif',  # its published row is in LIIF's tables
        description="EDSR-baseline encoder, Meta-Upscale MLP [256] as in LIIF's code",
        benchmarked=False,
        order=20,
    )
)
