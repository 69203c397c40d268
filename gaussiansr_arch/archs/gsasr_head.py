"""GSASR's Gaussian head (Chen et al., ICCV 2025): encoder features -> 2D Gaussians, per LR pixel.

Building blocks of the head the official code calls ``Fea2GS``: learnable Gaussian embeddings (one
token per "seed", ``num_seeds`` per ``window_size`` x ``window_size`` window of the padded LR), the
condition injection blocks (window cross-attention from the seeds to the encoder features of their
window, with the scale embedding), the Gaussian interaction blocks (self-attention among the seeds of
a window, shifted windows every other layer), a 2x2 pixel-shuffle upsampler (16 Gaussians per seed)
and five MLP heads (sigma, rho, opacity, colour, offset). What the raw outputs mean as Gaussians
(activations, units) is :mod:`gaussiansr_arch.archs.gsasr_arch`'s business.

Two simplifications, both exact (same outputs for the same weights; ``tests/test_gsasr.py`` checks
them against the official classes):

* The official "cross-attention with the scale embedding" attends from every token to keys that
  are all the same vector (the scale embedding repeated), so its softmax is uniform and its output
  is ``out_proj(v_proj(scale_embedding))`` whatever the query. :class:`ScaleInjection` computes that
  directly, once per image: the query/key projections and the LayerNorm that only fed the query
  have no effect on the output and are not parameters here (the converter drops them).
* Attention is ``F.scaled_dot_product_attention`` with the relative position bias as additive mask.

``rope=True`` is the official ``Fea2GS_ROPE_AMP`` (GSASR's released "enhanced" models, HAT-L among
them): both window attentions use rotary position embeddings (:mod:`gaussiansr_arch.archs.rope`)
instead of the bias tables, and a 3x3 conv on the seed grid closes every block (after its MLP) and
the interaction blocks (``conv_final``, before the skip from the injection blocks).

Tensors are channels-last grids: the seed tokens are a [B, Hs, Ws, C] image with one seed per
position (Hs = num_seeds_side x windows down), so shifting windows is a ``torch.roll`` of the grid.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gaussiansr_arch.archs.rope import add_rotary_positions, owner_rotations, rotate

# Seeds (rows x images x columns) whose upsampled features and heads are computed at once at
# inference: 8192 seeds -> 131072 Gaussians x 180 channels = 94 MB, whatever the image size.
# Training computes everything at once (the activations are kept for backward anyway).
TAIL_SEEDS = 8192
# Gaussians per call of the MLP heads at inference (their 4C-wide hidden layer: 32768 x 720 x 4 B = 94 MB).
HEAD_ROWS = 32768


def window_partition(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Split a channels-last grid into non-overlapping windows.

    Args:
        grid (Tensor): [B, H, W, C], H and W multiples of ``size``.
        size (int): Window side.

    Returns:
        Tensor: [B * (H/size) * (W/size), size*size, C], windows in (image, row, column) order,
        positions in each window row-major.
    """
    b, h, w, c = grid.shape
    windows = grid.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return windows.reshape(-1, size * size, c)


def window_merge(windows: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B*n, size*size, C] -> [B, height, width, C]."""
    c = windows.shape[-1]
    rows, cols = height // size, width // size
    grid = windows.view(-1, rows, cols, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(-1, height, width, c)


def self_position_index(side: int) -> torch.Tensor:
    """Swin's relative position index of a ``side`` x ``side`` window: [side^2, side^2] into a
    (2 side - 1)^2 bias table, ``(dy + side - 1) * (2 side - 1) + (dx + side - 1)``."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + side - 1
    dx = xs[:, None] - xs[None, :] + side - 1
    return dy * (2 * side - 1) + dx


def cross_position_index(seeds_side: int, window: int) -> torch.Tensor:
    """Relative position index of the seed -> feature window cross-attention: [seeds_side^2, window^2].

    Seeds and feature pixels are placed on a common grid (seed i at (i + 1/2) x window, pixel j at
    (j + 1/2) x seeds_side); each distinct coordinate difference gets a number and a (row, col)
    pair of differences indexes the bias table as ``number(dy) * largest_number + number(dx)``.
    The official code numbers the differences in the iteration order of a Python ``set`` of the
    sorted values (not in sorted order) and multiplies by the largest number (not the count), so
    some pairs share a table row; the same numbering is used here so that official bias tables
    mean the same (the index is also a buffer that official weights overwrite on loading).
    """
    seeds = [(i + 0.5) * window for i in range(seeds_side)]
    pixels = [(j + 0.5) * seeds_side for j in range(window)]
    delta = {(a - b) for a in seeds for b in pixels}
    numbering = {value: n for n, value in enumerate(set(sorted(delta)))}
    largest = max(numbering.values())
    number = torch.tensor([[numbering[a - b] for b in pixels] for a in seeds])  # [seeds_side, window]
    # seed (sy, sx) x pixel (py, px): rows differ by number[sy, py], columns by number[sx, px]
    rows = number[:, None, :, None].expand(seeds_side, seeds_side, window, window)
    cols = number[None, :, None, :].expand(seeds_side, seeds_side, window, window)
    return (rows * largest + cols).reshape(seeds_side * seeds_side, window * window)


def biased_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, heads: int):
    """Multi-head softmax attention with an additive bias per head.

    Args:
        q (Tensor): [N, Lq, C]; k, v (Tensor): [N, Lk, C] (already projected).
        bias (Tensor): [heads, Lq, Lk].
        heads (int): Number of heads (C divisible by it).

    Returns:
        Tensor: [N, Lq, C], heads concatenated (before the output projection).
    """
    n, lq, c = q.shape
    lk = k.shape[1]
    q = q.view(n, lq, heads, c // heads).transpose(1, 2)
    k = k.view(n, lk, heads, c // heads).transpose(1, 2)
    v = v.view(n, lk, heads, c // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype).unsqueeze(0))
    return out.transpose(1, 2).reshape(n, lq, c)


def rotary_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, owner: nn.Module, heads: int):
    """Multi-head softmax attention with RoPE on ``q`` and ``k`` (the rotations ``owner`` holds).

    Shapes as :func:`biased_attention`; query ``i`` and key ``j`` take the ``i``-th and ``j``-th
    positions of ``owner``'s raster.
    """
    n, lq, c = q.shape
    lk = k.shape[1]
    q = q.view(n, lq, heads, c // heads).transpose(1, 2)
    k = k.view(n, lk, heads, c // heads).transpose(1, 2)
    v = v.view(n, lk, heads, c // heads).transpose(1, 2)
    rotation = owner_rotations(owner)
    out = F.scaled_dot_product_attention(rotate(q, rotation), rotate(k, rotation), v)
    return out.transpose(1, 2).reshape(n, lq, c)


class FeedForward(nn.Module):
    """Linear -> ReLU -> Linear, same width in and out.

    Args:
        channels (int): In/out features.
        hidden (int): Hidden features.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., C] -> [..., C]."""
        return self.fc2(F.relu(self.fc1(x)))


def block_mlp(channels: int) -> nn.Sequential:
    """The Linear -> ReLU -> Linear closing each block (indices 0 and 2 hold the weights)."""
    return nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels))


class ScaleInjection(nn.Module):
    """The tokens' cross-attention to the scale embedding, in closed form.

    Every key and value is the same scale embedding, so the softmax is uniform and the attention
    returns ``out_proj(value(scale_embedding))`` for every token: one vector per image, added to
    all its tokens by the caller.

    Args:
        channels (int): Embedding width C.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.value = nn.Linear(channels, channels)
        self.out_proj = nn.Linear(channels, channels)

    def forward(self, scale_embedding: torch.Tensor) -> torch.Tensor:
        """[B, C] -> [B, C]."""
        return self.out_proj(self.value(scale_embedding))


class WindowCrossAttention(nn.Module):
    """Attention from the seeds of a window to the encoder features of the same window.

    Queries are the seed tokens (with their position embedding), keys and values the features of
    the ``window`` x ``window`` LR pixels; a learned bias per head and relative position
    (:func:`cross_position_index`) is added to the logits, or (``rope``) both are rotated by RoPE,
    each numbered on the raster of ``max(seeds_side, window)`` columns as the official code does (the
    natural (column, row) of both when ``seeds_side == window``, as in every released model).

    Args:
        channels (int): Width C. heads (int): Attention heads.
        seeds_side (int): Seeds per window side. window (int): Window side in LR pixels.
        rope (bool): RoPE instead of the bias. Default: False.
    """

    def __init__(self, channels: int, heads: int, seeds_side: int, window: int, rope: bool = False):
        super().__init__()
        self.heads, self.rope = heads, rope
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        side = max(seeds_side, window)
        if rope:
            add_rotary_positions(self, heads, channels // heads, side)
            return
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * side - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer('relative_position_index', cross_position_index(seeds_side, window))

    def forward(self, tokens: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """tokens [N, S, C] (seeds of N windows), feat [N, window^2, C] -> [N, S, C]."""
        if self.rope:
            return self.proj(rotary_attention(self.q(tokens), self.k(feat), self.v(feat), self, self.heads))
        index = self.relative_position_index
        bias = self.relative_position_bias_table[index.flatten()].view(*index.shape, -1).permute(2, 0, 1)
        return self.proj(biased_attention(self.q(tokens), self.k(feat), self.v(feat), bias, self.heads))


class SeedSelfAttention(nn.Module):
    """Self-attention among the seeds of a window, with Swin's relative position bias or (``rope``) RoPE.

    Args:
        channels (int): Width C. heads (int): Attention heads. seeds_side (int): Seeds per window side.
        rope (bool): RoPE at the seeds' (column, row) instead of the bias. Default: False.
    """

    def __init__(self, channels: int, heads: int, seeds_side: int, rope: bool = False):
        super().__init__()
        self.heads, self.rope = heads, rope
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        if rope:
            add_rotary_positions(self, heads, channels // heads, seeds_side)
            return
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * seeds_side - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer('relative_position_index', self_position_index(seeds_side))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, S, C] -> [N, S, C]."""
        if self.rope:
            return self.proj(rotary_attention(self.q(tokens), self.k(tokens), self.v(tokens), self, self.heads))
        index = self.relative_position_index
        bias = self.relative_position_bias_table[index.flatten()].view(*index.shape, -1).permute(2, 0, 1)
        return self.proj(biased_attention(self.q(tokens), self.k(tokens), self.v(tokens), bias, self.heads))


class ConditionInjectionLayer(nn.Module):
    """Scale injection + FFN, then window cross-attention to the features + FFN (pre-norm residuals).

    Odd layers roll the feature map by half a window (the seeds stay), without an attention mask,
    as the official code.

    Args:
        channels (int): Width C. heads (int): Attention heads. seeds_side (int): Seeds per window side.
        window (int): Window side (LR pixels). shift (int): Roll of the features (0 or window // 2).
        rope (bool): RoPE in the cross-attention. Default: False.
    """

    def __init__(self, channels: int, heads: int, seeds_side: int, window: int, shift: int, rope: bool = False):
        super().__init__()
        self.seeds_side, self.window, self.shift = seeds_side, window, shift
        self.scale_injection = ScaleInjection(channels)
        self.scale_ffn_norm = nn.LayerNorm(channels)
        self.scale_ffn = FeedForward(channels, channels)
        self.attn_norm = nn.LayerNorm(channels)
        self.attn = WindowCrossAttention(channels, heads, seeds_side, window, rope)
        self.feat_ffn_norm = nn.LayerNorm(channels)
        self.feat_ffn = FeedForward(channels, channels)

    def forward(self, tokens, pos, feat, scale_embedding):
        """tokens, pos [B, Hs, Ws, C]; feat [B, h, w, C]; scale_embedding [B, C] -> [B, Hs, Ws, C]."""
        tokens = tokens + self.scale_injection(scale_embedding)[:, None, None]
        tokens = tokens + self.scale_ffn(self.scale_ffn_norm(tokens))
        if self.shift:
            feat = torch.roll(feat, shifts=(-self.shift, -self.shift), dims=(1, 2))
        hs, ws = tokens.shape[1:3]
        queries = window_partition(self.attn_norm(tokens) + pos, self.seeds_side)
        attended = self.attn(queries, window_partition(feat, self.window))
        tokens = tokens + window_merge(attended, self.seeds_side, hs, ws)
        return tokens + self.feat_ffn(self.feat_ffn_norm(tokens))


def grid_conv(channels: int) -> nn.Conv2d:
    """The 3x3 conv over the whole seed grid that closes the RoPE head's blocks."""
    return nn.Conv2d(channels, channels, 3, 1, 1)


def apply_grid_conv(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """``conv`` on channels-last [B, Hs, Ws, C] tokens (zero padding at the grid's border)."""
    return conv(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ConditionInjectionBlock(nn.Module):
    """LayerNorm -> ``num_layers`` :class:`ConditionInjectionLayer` -> MLP (-> 3x3 conv with ``rope``),
    plus a skip over the block.

    Args:
        channels, heads, seeds_side, window: As :class:`ConditionInjectionLayer`. num_layers (int): Layers.
        rope (bool): The RoPE head's block (RoPE attention, closing conv). Default: False.
    """

    def __init__(self, channels: int, heads: int, seeds_side: int, window: int, num_layers: int, rope: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.layers = nn.ModuleList(
            [
                ConditionInjectionLayer(channels, heads, seeds_side, window, 0 if i % 2 == 0 else window // 2, rope)
                for i in range(num_layers)
            ]
        )
        self.mlp = block_mlp(channels)
        if rope:
            self.conv = grid_conv(channels)

    def forward(self, tokens, pos, feat, scale_embedding):
        """Shapes as :meth:`ConditionInjectionLayer.forward`."""
        x = self.norm(tokens)
        for layer in self.layers:
            x = layer(x, pos, feat, scale_embedding)
        x = self.mlp(x)
        return tokens + (apply_grid_conv(self.conv, x) if hasattr(self, 'conv') else x)


class GaussianInteractionLayer(nn.Module):
    """Scale injection + FFN, then (shifted) window self-attention among the seeds + FFN.

    Args:
        channels (int): Width C. heads (int): Attention heads. seeds_side (int): Seeds per window side.
        shift (int): Roll of the seed grid before attention (0 or seeds_side // 2), undone after.
        rope (bool): RoPE in the self-attention. Default: False.
    """

    def __init__(self, channels: int, heads: int, seeds_side: int, shift: int, rope: bool = False):
        super().__init__()
        self.seeds_side, self.shift = seeds_side, shift
        self.scale_injection = ScaleInjection(channels)
        self.scale_ffn_norm = nn.LayerNorm(channels)
        self.scale_ffn = FeedForward(channels, channels)
        self.attn_norm = nn.LayerNorm(channels)
        self.attn = SeedSelfAttention(channels, heads, seeds_side, rope)
        self.attn_ffn_norm = nn.LayerNorm(channels)
        self.attn_ffn = FeedForward(channels, channels)

    def forward(self, tokens, scale_embedding):
        """tokens [B, Hs, Ws, C]; scale_embedding [B, C] -> [B, Hs, Ws, C]."""
        tokens = tokens + self.scale_injection(scale_embedding)[:, None, None]
        tokens = tokens + self.scale_ffn(self.scale_ffn_norm(tokens))
        x = self.attn_norm(tokens)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        hs, ws = x.shape[1:3]
        x = window_merge(self.attn(window_partition(x, self.seeds_side)), self.seeds_side, hs, ws)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        tokens = tokens + x
        return tokens + self.attn_ffn(self.attn_ffn_norm(tokens))


class GaussianInteractionBlock(nn.Module):
    """LayerNorm -> ``num_layers`` :class:`GaussianInteractionLayer` -> MLP (-> 3x3 conv with ``rope``),
    plus a skip over the block."""

    def __init__(self, channels: int, heads: int, seeds_side: int, num_layers: int, rope: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.layers = nn.ModuleList(
            [
                GaussianInteractionLayer(channels, heads, seeds_side, 0 if i % 2 == 0 else seeds_side // 2, rope)
                for i in range(num_layers)
            ]
        )
        self.mlp = block_mlp(channels)
        if rope:
            self.conv = grid_conv(channels)

    def forward(self, tokens, scale_embedding):
        """tokens [B, Hs, Ws, C]; scale_embedding [B, C] -> [B, Hs, Ws, C]."""
        x = self.norm(tokens)
        for layer in self.layers:
            x = layer(x, scale_embedding)
        x = self.mlp(x)
        return tokens + (apply_grid_conv(self.conv, x) if hasattr(self, 'conv') else x)


def output_mlp(channels: int, out: int) -> nn.Sequential:
    """An MLP head C -> C -> 4C -> ``out`` with ReLUs (weights at indices 0, 2, 4)."""
    return nn.Sequential(
        nn.Linear(channels, channels),
        nn.ReLU(),
        nn.Linear(channels, 4 * channels),
        nn.ReLU(),
        nn.Linear(4 * channels, out),
    )


@dataclass
class RawGaussians:
    """The head's outputs before any activation, on the Gaussian grid [B, Hg, Wg] (row-major).

    Attributes:
        sigma (Tensor): [B,Hg,Wg,2] (rows, cols). rho (Tensor): [B,Hg,Wg].
        opacity (Tensor): [B,Hg,Wg]. colour (Tensor): [B,Hg,Wg,3] (RGB).
        offset (Tensor): [B,Hg,Wg,2] (rows, cols), in Gaussian-grid cells.
    """

    sigma: torch.Tensor
    rho: torch.Tensor
    opacity: torch.Tensor
    colour: torch.Tensor
    offset: torch.Tensor


class GaussianHead(nn.Module):
    """Encoder features of a padded LR image -> raw parameters of its Gaussians (official ``Fea2GS``).

    Args:
        in_channels (int): Encoder channels.
        channels (int): Token width C. Default: 180.
        num_heads (int): Attention heads. Default: 6.
        injection_blocks (int): Condition injection blocks. Default: 1.
        injection_layers (int): Layers per condition injection block. Default: 2.
        interaction_blocks (int): Gaussian interaction blocks. Default: 6.
        interaction_layers (int): Layers per interaction block. Default: 6.
        num_seeds (int): Seed tokens per window, a square. Default: 144.
        window_size (int): Window side in LR pixels. Default: 12.
        shuffle_scales (Sequence[int]): Pixel-shuffle factors of the upsampler. Default: (2, 2).
        rope (bool): The official ``Fea2GS_ROPE_AMP`` (module docstring); ``channels / num_heads``
            must then be divisible by 4. Default: False.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 180,
        num_heads: int = 6,
        injection_blocks: int = 1,
        injection_layers: int = 2,
        interaction_blocks: int = 6,
        interaction_layers: int = 6,
        num_seeds: int = 144,
        window_size: int = 12,
        shuffle_scales: Sequence[int] = (2, 2),
        rope: bool = False,
    ):
        super().__init__()
        side = math.isqrt(num_seeds)
        if side * side != num_seeds:
            raise ValueError(f'num_seeds must be a square number, got {num_seeds}')
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by num_heads ({num_heads})')
        if rope and (channels // num_heads) % 4:
            raise ValueError(f'rope needs channels / num_heads divisible by 4, got {channels} / {num_heads}')
        if window_size < 1 or len(shuffle_scales) < 1 or min(shuffle_scales) < 1:
            raise ValueError(f'window_size and shuffle_scales must be positive, got {window_size}, {shuffle_scales}')
        self.channels, self.seeds_side, self.window_size = channels, side, window_size
        self.upsample_factor = math.prod(shuffle_scales)
        self.embedding = nn.Parameter(torch.randn(num_seeds, channels))
        self.pos_embedding = nn.Parameter(torch.randn(num_seeds, channels))
        self.feat_proj = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 1, 1), nn.ReLU(), nn.Conv2d(channels, channels, 3, 1, 1)
        )
        self.scale_mlp = nn.Sequential(nn.Linear(1, 4 * channels), nn.ReLU(), nn.Linear(4 * channels, channels))
        self.injection_blocks = nn.ModuleList(
            [
                ConditionInjectionBlock(channels, num_heads, side, window_size, injection_layers, rope)
                for _ in range(injection_blocks)
            ]
        )
        self.interaction_blocks = nn.ModuleList(
            [
                GaussianInteractionBlock(channels, num_heads, side, interaction_layers, rope)
                for _ in range(interaction_blocks)
            ]
        )
        if rope:
            self.conv_final = grid_conv(channels)
        upsample = []
        for factor in shuffle_scales:
            upsample += [nn.Conv2d(channels, channels * factor * factor, 3, 1, 1), nn.PixelShuffle(factor)]
        self.upsample = nn.Sequential(*upsample)
        self.upsample_halo = len(shuffle_scales)  # seed rows each 3x3 conv stage reaches beyond a strip
        self.sigma_head = output_mlp(channels, 2)
        self.rho_head = output_mlp(channels, 1)
        self.opacity_head = output_mlp(channels, 1)
        self.colour_head = output_mlp(channels, 3)
        self.offset_head = output_mlp(channels, 2)

    def tile(self, table: torch.Tensor, batch: int, rows: int, cols: int) -> torch.Tensor:
        """A [S, C] per-window table repeated over ``rows`` x ``cols`` windows: [batch, Hs, Ws, C]."""
        s = self.seeds_side
        grid = table.view(1, 1, s, 1, s, -1).expand(batch, rows, s, cols, s, -1)
        return grid.reshape(batch, rows * s, cols * s, -1)

    def tokens(self, feat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The seed tokens after the injection and interaction blocks.

        Args:
            feat (Tensor): [B, in_channels, h, w] encoder features, h and w multiples of ``window_size``.
            scale (Tensor): [B] upscaling factors.

        Returns:
            Tensor: [B, Hs, Ws, C], Hs = h / window_size x seeds per window side.
        """
        b, _, h, w = feat.shape
        rows, cols = h // self.window_size, w // self.window_size
        scale_embedding = self.scale_mlp((1 / scale).to(feat.dtype).unsqueeze(1))  # [B, C]
        pos = self.tile(self.pos_embedding, b, rows, cols)
        tokens = self.tile(self.embedding, b, rows, cols)
        image = self.feat_proj(feat).permute(0, 2, 3, 1)  # [B, h, w, C]
        for block in self.injection_blocks:
            tokens = block(tokens, pos, image, scale_embedding)
        skip = tokens
        for block in self.interaction_blocks:
            tokens = block(tokens, scale_embedding)
        if hasattr(self, 'conv_final'):
            tokens = apply_grid_conv(self.conv_final, tokens)
        return tokens + skip

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """The five MLP heads on [..., C] -> [..., 9] = sigma (2), rho, opacity, colour (3), offset (2)."""
        heads = (self.sigma_head, self.rho_head, self.opacity_head, self.colour_head, self.offset_head)
        return torch.cat([head(x) for head in heads], dim=-1)

    def gaussians(self, tokens: torch.Tensor) -> RawGaussians:
        """Upsample the seed grid and apply the heads.

        In training everything runs at once. Otherwise strips of seed rows are upsampled (with the
        rows the 3x3 convs reach beyond the strip) and the heads run on bounded row counts, so the
        memory beyond the [B, Hg, Wg, 9] result is bounded whatever the image size; same values.

        Args:
            tokens (Tensor): [B, Hs, Ws, C].

        Returns:
            RawGaussians: on the [B, Hs*f, Ws*f] grid, f = the product of ``shuffle_scales``.
        """
        x = tokens.permute(0, 3, 1, 2)  # [B, C, Hs, Ws]
        b, _, hs, ws = x.shape
        f = self.upsample_factor
        if torch.is_grad_enabled():
            raw = self.heads(self.upsample(x).permute(0, 2, 3, 1))
        else:
            raw = x.new_empty(b, hs * f, ws * f, 9)
            strip = max(1, TAIL_SEEDS // (b * ws))
            halo = self.upsample_halo
            for r0 in range(0, hs, strip):
                r1 = min(hs, r0 + strip)
                lo, hi = max(0, r0 - halo), min(hs, r1 + halo)
                up = self.upsample(x[:, :, lo:hi])[:, :, (r0 - lo) * f : (r1 - lo) * f]
                flat = up.permute(0, 2, 3, 1).reshape(-1, up.shape[1])
                out = torch.cat([self.heads(flat[i : i + HEAD_ROWS]) for i in range(0, flat.shape[0], HEAD_ROWS)])
                raw[:, r0 * f : r1 * f] = out.view(b, (r1 - r0) * f, ws * f, 9)
        return RawGaussians(
            sigma=raw[..., 0:2], rho=raw[..., 2], opacity=raw[..., 3], colour=raw[..., 4:7], offset=raw[..., 7:9]
        )

    def forward(self, feat: torch.Tensor, scale: torch.Tensor) -> RawGaussians:
        """Encoder features [B, in_channels, h, w] (h, w multiples of ``window_size``) and scales [B] -> Gaussians."""
        return self.gaussians(self.tokens(feat, scale))
