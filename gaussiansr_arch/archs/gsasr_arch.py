"""GSASR (Chen, Chen, Zhang, Zhang, ICCV 2025): arbitrary-scale SR with 2D Gaussians predicted per image.

Pipeline: the LR image (RGB in [0, 1], reflect-padded at the bottom/right to a multiple of the
window) -> encoder (EDSR-baseline without its long skip, as the official ``EDSRNOUP``; or RDN,
SwinIR) -> :class:`~gaussiansr_arch.archs.gsasr_head.GaussianHead` conditioned on the scale ->
16 Gaussians per LR pixel -> summed at the query points by the shared renderer
(:func:`~gaussiansr_arch.archs.gaussian_renderer.render_anchored_gaussians`, rule 'gaussian':
colour x opacity x exp(E), no alpha compositing, as the official CUDA kernel).

**The Gaussians** (official ``generate_2D_gaussian_splatting_step`` and ``rendering_cuda_new``,
rewritten in LR pixels of the padded image): with ``m`` Gaussians per LR pixel and axis (4 in the
paper), Gaussian ``(ky, kx)`` of pixel ``(i, j)`` is centred at ``(i, j) + ((k + 0.5) / m - 0.5) +
raw_offset / m``; colour ``sigmoid``, opacity ``sigmoid``, correlation ``0.999999 tanh``, and along
each axis a standard deviation ``(0.99999 sigmoid(raw) + 1e-6) * s * r / step_size`` LR pixels, where
``s`` is the scale given to the network, ``r`` the output pixel size in LR pixels and ``step_size``
1.2. When the output grid is ``s`` times the LR grid (training, and the query path) ``s r = 1``.

**Whole images** (:meth:`GSASR.render`, used by ``upscale``) follow the official ``test()``: for
an output (H, W) of an h x w input, ``s = H / h``; the padded input (hp, wp) is rendered on a
canvas of ``ceil(s hp) x ceil(s wp)`` pixels spanning exactly the padded image, and the top-left
H x W pixels are kept. Canvas pixel ``i`` is therefore the LIIF pixel centre
``-1 + (2 i + 1) / ceil(s hp)`` of the padded image, i.e. LR position ``(i + 0.5) hp / ceil(s hp) -
0.5``, and ``r = hp / ceil(s hp)``. That equals the LIIF pixel centre of the H x W output (position
``(i + 0.5) h / H - 0.5``) only when ``s hp`` is an integer and ``H = s h`` (e.g. integer scales);
otherwise the official grid is slightly finer than the output's and cannot be written as queries
of the output image, hence the override. (The official kernel writes its pixel centres as
``2 i / (n - 1) - 1`` after mapping the Gaussian centres by ``(x + 1 - 1/n) n / (n - 1) - 1``: the
same positions.) ``docs/gsasr.md`` derives this and lists the deviations (the official kernel also
drops every Gaussian beyond a ``dmax`` box; here every Gaussian is summed up to a 1e-5 weight).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE, ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import axis_coord, axis_coord_at, check_size, pixel_position, size_tensor
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.gaussian_renderer import (
    AnchoredGaussians,
    anchored_gaussian_table,
    conic_from_sigma_rho,
    evaluate_anchored_table,
    field_dtype,
    window_radius,
)
from gaussiansr_arch.archs.gsasr_head import GaussianHead, RawGaussians
from gaussiansr_arch.utils.arch_detect import indices
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method

# The official activations (generate_2D_gaussian_splatting_step): sigma = SIGMA_SCALE sigmoid + SIGMA_MIN,
# rho = RHO_SCALE tanh (|rho| < 1 keeps the covariance positive definite).
SIGMA_SCALE, SIGMA_MIN, RHO_SCALE = 0.99999, 1e-6, 0.999999


@dataclass
class GSASRGaussians:
    """The Gaussians the head predicts for one scale, anchored at the padded LR grid [B, hp, wp].

    Attributes:
        sigma (Tensor): [B,hp,wp,G,2] standard deviations (rows, cols) in units of
            ``step_size / (s r)`` LR pixels (see the module docstring).
        rho (Tensor): [B,hp,wp,G] correlation. opacity (Tensor): [B,hp,wp,G].
        colour (Tensor): [B,hp,wp,G,3] RGB. offset (Tensor): [B,hp,wp,G,2] centre - anchor in LR px.
    """

    sigma: torch.Tensor
    rho: torch.Tensor
    opacity: torch.Tensor
    colour: torch.Tensor
    offset: torch.Tensor

    def anchored(self, sigma_scale: torch.Tensor) -> AnchoredGaussians:
        """The renderer's form, with standard deviations ``sigma * sigma_scale`` LR pixels.

        Args:
            sigma_scale (Tensor): [B, 2] (rows, cols): ``s r / step_size`` per image.
        """
        sigma = self.sigma * sigma_scale.to(self.sigma.dtype).view(-1, 1, 1, 1, 2)
        return AnchoredGaussians(self.colour, self.opacity, conic_from_sigma_rho(sigma, self.rho), self.offset)


def gaussians_from_raw(raw: RawGaussians, per_side: int) -> GSASRGaussians:
    """Activate the head's outputs and regroup its grid per LR pixel.

    Args:
        raw (RawGaussians): on a [B, hp*m, wp*m] grid, m = ``per_side``.
        per_side (int): Gaussians per LR pixel and axis (m).

    Returns:
        GSASRGaussians: G = m^2 per pixel, Gaussian ``ky * m + kx`` of a pixel at grid cell
        ``(i m + ky, j m + kx)``. Float32 under mixed precision (``field_dtype``).
    """
    m = per_side
    dtype = field_dtype(raw.sigma.dtype)

    def per_pixel(t: torch.Tensor) -> torch.Tensor:  # [B, hp*m, wp*m, ...] -> [B, hp, wp, m*m, ...]
        b, hg, wg = t.shape[:3]
        tail = t.shape[3:]
        t = t.to(dtype).reshape(b, hg // m, m, wg // m, m, *tail).transpose(2, 3)
        return t.reshape(b, hg // m, wg // m, m * m, *tail)

    sub = (torch.arange(m, device=raw.offset.device, dtype=dtype) + 0.5) / m - 0.5  # sub-pixel reference points
    reference = torch.stack(torch.meshgrid(sub, sub, indexing='ij'), dim=-1).reshape(m * m, 2)
    return GSASRGaussians(
        sigma=SIGMA_SCALE * torch.sigmoid(per_pixel(raw.sigma)) + SIGMA_MIN,
        rho=RHO_SCALE * torch.tanh(per_pixel(raw.rho)),
        opacity=torch.sigmoid(per_pixel(raw.opacity)),
        colour=torch.sigmoid(per_pixel(raw.colour)),
        offset=reference + per_pixel(raw.offset) / m,
    )


def check_isotropic(lr_size: Sequence[int], size: Sequence[float]) -> float:
    """The scale ``H / h`` of an output (H, W) of an (h, w) input, if both axes have one scale.

    Sizes made from one scale (rounded, floored or ceiled per axis: ``H = round(h s)``, ...) give
    ratios ``H / h`` and ``W / w`` at most ``1/h + 1/w`` apart; farther apart is a ValueError.
    ``size`` may hold non-integers (sizes read from cells, 2 / cell).
    """
    (h, w), (big_h, big_w) = lr_size, size
    scale, allowed = big_h / h, 1 / h + 1 / w
    if not abs(big_w / w - scale) <= allowed * (1 + 1e-6):
        raise ValueError(
            f'GSASR upscales both axes by one factor: output {big_h:g}x{big_w:g} of a {h}x{w} input has '
            f'H/h = {scale:.6g} but W/w = {big_w / w:.6g} (one scale rounds to ratios at most 1/h + 1/w = '
            f'{allowed:.3g} apart)'
        )
    return scale


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad [B,C,h,w] at the bottom/right to multiples of ``multiple``: reflect (as the official
    ``test()``) where the image is larger than the padding, else replicate (reflect is impossible)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


@dataclass
class GSASRState:
    """What ``GSASR.encode`` computes once per LR image.

    The head depends on the scale, so it runs per scale on first use and its Gaussians are kept
    here (several output sizes from one encoding run the encoder once, the head once per scale).

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        feat (Tensor): [B,C,hp,wp] encoder features of the padded input.
        gaussians (dict): per-image scales (tuple of floats) -> :class:`GSASRGaussians`.
    """

    lq: torch.Tensor
    feat: torch.Tensor
    gaussians: dict = field(default_factory=dict)


@ARCH_REGISTRY.register()
class GSASR(ArbitraryScaleArch):
    """GSASR; ``GSASR()`` is the paper's EDSR-baseline model (1.22M + 16.73M parameters).

    The official head has 19.22M parameters, 2.49M of which (the query/key projections and query
    LayerNorm of the attention to the scale embedding) do not affect its output and are left out
    (:mod:`~gaussiansr_arch.archs.gsasr_head`).

    Args:
        encoder (str): 'edsr-baseline' (default), 'rdn' or 'swinir'.
        encoder_opt (dict | None): Encoder options; for 'edsr-baseline' ``long_skip`` defaults
            to False here (the official ``EDSRNOUP`` returns the body's output without it).
        channels (int): Head width. Default: 180.
        num_heads (int): Attention heads. Default: 6.
        injection_blocks (int): Condition injection blocks. Default: 1.
        injection_layers (int): Layers per injection block. Default: 2.
        interaction_blocks (int): Gaussian interaction blocks. Default: 6.
        interaction_layers (int): Layers per interaction block. Default: 6.
        num_seeds (int): Gaussian embeddings per window (a square). Default: 144.
        window_size (int): Window side in LR pixels; inputs are padded to multiples of it. Default: 12.
        shuffle_scales (Sequence[int]): Pixel-shuffle factors of the head's upsampler. Default: (2, 2).
            sqrt(num_seeds) x their product / window_size must be an integer m: m^2 Gaussians per LR pixel.
        step_size (float): Official ``default_step_size``: a raw sigma of 1 is ``1 / step_size`` LR
            pixels when ``s r = 1``. Default: 1.2.
        tolerance (float | None): Weight below which a Gaussian may be left out of a query's window
            (renderer's ``window_radius``; None: its default, 1e-5).
        rope (bool): The official ``Fea2GS_ROPE_AMP`` head of the released "enhanced" models (RoPE
            attention, block convs; :mod:`~gaussiansr_arch.archs.gsasr_head`). The released HAT-L model
            is ``encoder: hat`` with ``encoder_opt.rope`` too (``HATNOUP_ROPE_AMP``). Default: False.
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        channels: int = 180,
        num_heads: int = 6,
        injection_blocks: int = 1,
        injection_layers: int = 2,
        interaction_blocks: int = 6,
        interaction_layers: int = 6,
        num_seeds: int = 144,
        window_size: int = 12,
        shuffle_scales: Sequence[int] = (2, 2),
        step_size: float = 1.2,
        tolerance: float | None = None,
        rope: bool = False,
    ):
        super().__init__()
        encoder_opt = dict(encoder_opt or {})
        if encoder == 'edsr-baseline':
            encoder_opt.setdefault('long_skip', False)
        self.encoder = build_encoder(encoder, **encoder_opt)
        self.head = GaussianHead(
            self.encoder.out_channels,
            channels=channels,
            num_heads=num_heads,
            injection_blocks=injection_blocks,
            injection_layers=injection_layers,
            interaction_blocks=interaction_blocks,
            interaction_layers=interaction_layers,
            num_seeds=num_seeds,
            window_size=window_size,
            shuffle_scales=tuple(shuffle_scales),
            rope=rope,
        )
        per_window = self.head.seeds_side * self.head.upsample_factor
        if per_window % window_size:
            raise ValueError(
                f'sqrt(num_seeds) x prod(shuffle_scales) = {per_window} Gaussians per window side is not a '
                f'multiple of window_size {window_size}: Gaussians would not tile the LR pixels'
            )
        if not step_size > 0:
            raise ValueError(f'step_size must be > 0, got {step_size}')
        self.window_size, self.per_side = window_size, per_window // window_size
        self.step_size, self.tolerance = float(step_size), tolerance

    # ------------------------------------------------------------------ encoding
    def check_output_size(self, lr_size: Sequence[int], size: Sequence[int]) -> None:
        check_isotropic(lr_size, size)

    def encoder_input(self, lq: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] as is (the official encoders read [0,1]), padded to multiples of the window."""
        return pad_to_multiple(lq, self.window_size)

    def padded_size(self, lq: torch.Tensor) -> tuple[int, int]:
        """(hp, wp): the input's size rounded up to multiples of the window."""
        h, w = lq.shape[-2:]
        return h + (-h) % self.window_size, w + (-w) % self.window_size

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> GSASRState:
        """Keep the features of the padded input [B,C,hp,wp] (the head runs per scale, later)."""
        if tuple(feat.shape[-2:]) != self.padded_size(lq):
            raise ValueError(
                f'GSASR features must cover the padded input {self.padded_size(lq)} (encoder_input), '
                f'got {tuple(feat.shape[-2:])}'
            )
        return GSASRState(lq=lq, feat=feat)

    def gaussians(self, state: GSASRState, scales: Sequence[float]) -> GSASRGaussians:
        """The Gaussians of every image of ``state`` at its scale (computed once per scale tuple)."""
        key = tuple(float(s) for s in scales)
        if key not in state.gaussians:
            scale = torch.tensor(key, dtype=torch.float32, device=state.feat.device)
            state.gaussians[key] = gaussians_from_raw(self.head(state.feat, scale), self.per_side)
        return state.gaussians[key]

    # ------------------------------------------------------------------ rendering
    def _table(self, gaussians: GSASRGaussians, sigma_scale: torch.Tensor):
        anchored = gaussians.anchored(sigma_scale)
        return anchored_gaussian_table(anchored, window_radius(anchored, self.tolerance), 'gaussian')

    def query(self, state: GSASRState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at ``coord`` [B,Q,2] (LIIF coordinates of the input) with output cells ``cell``.

        The cell gives each image's scale (``s = 2 / (cell_row h)``, the head's input) and output
        pixel size ``r = cell (h, w) / 2``; it must be the same for all queries of an image.

        Raises:
            ValueError: cells that differ within an image, or that are not isotropic.
        """
        b, q = coord.shape[:2]
        if q == 0:
            return coord.new_zeros(b, 0, 3)
        first = cell[:, :1]
        if not torch.allclose(cell, first.expand_as(cell), rtol=1e-5, atol=0):
            raise ValueError('GSASR renders one output grid per image: all queries of an image need the same cell')
        h, w = state.lq.shape[-2:]
        hp, wp = state.feat.shape[-2:]
        cells = first[:, 0].double().tolist()
        scales = [check_isotropic((h, w), (2 / cy, 2 / cx)) for cy, cx in cells]
        sigma_scale = torch.tensor(
            [[s * cy * h / 2 / self.step_size, s * cx * w / 2 / self.step_size] for s, (cy, cx) in zip(scales, cells)],
            device=coord.device,
        )
        if (hp, wp) != (h, w):  # LIIF coordinates of the input -> of the padded input (same pixel positions)
            pos = pixel_position(coord, (h, w))
            coord = (pos + 0.5) * 2 / size_tensor((hp, wp), pos) - 1
        table = self._table(self.gaussians(state, scales), sigma_scale)
        return evaluate_anchored_table(table, coord).to(coord.dtype)

    def render(self, state: GSASRState, size: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
        """The official ``test()`` image: the padded input rendered on its ceil(s hp) x ceil(s wp)
        canvas, cropped to ``size`` = (H, W); ``chunk_size`` output pixels at a time (whole rows).

        Raises:
            ValueError: a size that is not isotropic (:func:`check_isotropic`).
        """
        big_h, big_w = check_size(size)
        if chunk_size <= 0:
            raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
        lq = state.lq
        b, (h, w), (hp, wp) = lq.shape[0], lq.shape[-2:], state.feat.shape[-2:]
        scale = check_isotropic((h, w), (big_h, big_w))
        # ceil(s hp) with s = H / h, in integers (the official float32 product can round an exact
        # integer up and add a pixel)
        canvas_h, canvas_w = -(-big_h * hp // h), -(-big_h * wp // h)
        sigma_scale = torch.tensor([[scale * hp / canvas_h, scale * wp / canvas_w]], device=lq.device)
        table = self._table(self.gaussians(state, [scale] * b), sigma_scale.expand(b, 2) / self.step_size)
        rows = axis_coord(canvas_h, lq.device, lq.dtype)
        # W can exceed ceil(s wp) when rounding made W / w > H / h: the canvas's spacing continues
        cols = axis_coord_at(torch.arange(big_w, device=lq.device), torch.tensor(canvas_w, device=lq.device), lq.dtype)
        out = torch.empty(b, 3, big_h, big_w, device=lq.device, dtype=lq.dtype)
        step = max(1, chunk_size // big_w)
        for r0 in range(0, big_h, step):
            r1 = min(big_h, r0 + step)
            coord = torch.stack(torch.meshgrid(rows[r0:r1], cols, indexing='ij'), dim=-1).reshape(1, -1, 2)
            rgb = evaluate_anchored_table(table, coord.expand(b, -1, -1))
            out[:, :, r0:r1] = rgb.transpose(1, 2).reshape(b, 3, r1 - r0, big_w)
        return out


# ---------------------------------------------------------------------------- the method descriptor
def detect_gsasr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """GSASR's head options from ``head.*`` (``archs/gsasr_head.py`` names); None if they do not fit."""
    embedding = state.get('head.embedding')
    feat_proj = state.get('head.feat_proj.0.weight')
    if embedding is None or embedding.dim() != 2 or feat_proj is None or feat_proj.shape[1] != channels:
        return None
    num_seeds, width = (int(n) for n in embedding.shape)
    injection = indices(state, r'head\.injection_blocks\.(\d+)\.norm\.weight')
    interaction = indices(state, r'head\.interaction_blocks\.(\d+)\.norm\.weight')
    upsample = [state[f'head.upsample.{i}.weight'] for i in indices(state, r'head\.upsample\.(\d+)\.weight')]
    cross = 'head.injection_blocks.0.layers.0.attn.'
    rope = f'{cross}rope_freqs' in state
    if rope:  # [2, heads, head_dim / 2]; positions on a raster max(seeds side, window) wide
        heads = int(state[f'{cross}rope_freqs'].shape[1])
        raster = state.get(f'{cross}rope_t_x')
        if raster is None or not upsample:
            return None
        # the window is visible only when wider than the seeds' side; else taken equal to it (as in
        # every released RoPE model)
        window = math.isqrt(int(raster.shape[0]))
    else:
        tables = [k for k in state if k.startswith('head.') and k.endswith('.relative_position_bias_table')]
        cross_index = state.get(f'{cross}relative_position_index')
        if not tables or cross_index is None or not upsample:
            return None
        heads = int(state[tables[0]].shape[1])
        window = math.isqrt(int(cross_index.shape[1]))  # [seeds, window^2]
    opt = {
        'channels': width,
        'num_heads': heads,
        'injection_blocks': len(injection),
        'injection_layers': len(indices(state, r'head\.injection_blocks\.0\.layers\.(\d+)\.attn_norm\.weight')),
        'interaction_blocks': len(interaction),
        'interaction_layers': len(indices(state, r'head\.interaction_blocks\.0\.layers\.(\d+)\.attn_norm\.weight')),
        'num_seeds': num_seeds,
        'window_size': window,
        'shuffle_scales': [math.isqrt(int(w.shape[0]) // width) for w in upsample],  # conv to C f^2 channels
    }
    if rope:
        opt['rope'] = True
    return opt


METHOD = register_method(
    Method(
        arch='GSASR',
        marker='head.embedding',
        detect=detect_gsasr,
        # Window 1: no padding, so the official canvas is the output grid and upscale == forward
        # (tests/test_gsasr.py covers padding); 2x2 seeds (shifted self-attention), 16 Gaussians per pixel.
        tiny={
            'encoder_opt': {'num_feat': 8, 'num_block': 1},
            'channels': 8,
            'num_heads': 2,
            'injection_layers': 1,
            'interaction_blocks': 1,
            'interaction_layers': 2,
            'num_seeds': 4,
            'window_size': 1,
            'shuffle_scales': [2],
        },
        protocol='gsasr',
        default_model="the paper's EDSR-baseline model",
        description='EDSR-baseline encoder without long skip, the official Fea2GS head',
        # The official paper YAML: batch 16 per GPU on the 4 GPUs of its README's command.
        schedule=ReferenceSchedule(500_000, 64, 48, 'GSASR (Chen et al., ICCV 2025; official paper options, 4 GPUs)'),
        onnx=False,  # a data-dependent window radius: gaussiansr-export-onnx refuses it with one line
        official_weights=True,  # the test files read the converted paper weights (docs/gsasr.md)
        order=30,
    )
)
