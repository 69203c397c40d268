"""HAT's feature extractor (Chen et al., "Activating More Pixels in Image Super-Resolution Transformer", CVPR 2023).

The body of HAT without its reconstruction head: ``conv_first`` -> residual hybrid attention groups
(RHAG: hybrid attention blocks, i.e. (shifted) window self-attention plus a channel-attention conv
branch, then one overlapping cross-attention block and a conv) -> LayerNorm -> ``conv_after_body``
plus the long skip from ``conv_first``. This is what the arbitrary-scale methods take from HAT:
ContinuousSR's ``hat`` encoder feeds these features to its reconstruction head (our
``FeatureUpsampler``), GSASR's ``HATNOUP`` adds the head's first conv + LeakyReLU
(``out_feat``). Neither applies HAT's mean subtraction / ``img_range`` scaling (both comment it
out), so neither does this encoder: it reads the image as the arch gives it.

Written from the paper and the official code (github.com/XPixelGroup/HAT, Apache-2.0) read for
facts; parameter and buffer names are the official ones, so an official state dict loads as is
(``tests/test_hat.py`` checks the features against the official module, docs/architecture.md).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import trunc_normal_
from basicsr.archs.swinir_arch import DropPath, Mlp, window_partition, window_reverse
from torch import nn
from torch.utils.checkpoint import checkpoint

from gaussiansr_arch.archs.rope import add_rotary_positions, owner_rotations, rotate

# The masked-out logit of shifted windows (the official value; exp(-100) underflows to 0 in float32).
MASKED = -100.0


def self_attention_index(window: int) -> torch.Tensor:
    """[w^2, w^2] row of the relative-position table for each (query, key) pair of a w x w window."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    rows, cols = rows.flatten(), cols.flatten()
    d_row = rows[:, None] - rows[None, :] + window - 1
    d_col = cols[:, None] - cols[None, :] + window - 1
    return d_row * (2 * window - 1) + d_col


def overlap_window(window: int, overlap_ratio: float) -> int:
    """Side of the key window of the overlapping cross-attention (the official ``overlap_win_size``)."""
    return window + int(window * overlap_ratio)


def cross_attention_index(window: int, overlap: int) -> torch.Tensor:
    """[w^2, o^2] row of the OCA table for a query in the w x w window and a key in the o x o one.

    Key offsets from the query run from ``-(o - w) + ... `` to ``o - 1``: ``w + o - 1`` values per axis.
    """
    q_rows, q_cols = (t.flatten() for t in torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij'))
    k_rows, k_cols = (t.flatten() for t in torch.meshgrid(torch.arange(overlap), torch.arange(overlap), indexing='ij'))
    d_row = k_rows[None, :] - q_rows[:, None] + window - overlap + 1
    d_col = k_cols[None, :] - q_cols[:, None] + window - overlap + 1
    return d_row * (window + overlap - 1) + d_col


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """[windows, w^2, w^2] additive mask of shifted-window attention on an h x w map (multiples of w).

    After the cyclic shift, pixels that came from different regions (the last ``window`` rows split
    at ``shift``, likewise columns) must not attend to each other.
    """

    def regions(n: int) -> torch.Tensor:
        idx = torch.arange(n)
        return (idx >= n - window).long() + (idx >= n - shift).long()

    label = (regions(height)[:, None] * 3 + regions(width)[None, :]).float()
    windows = window_partition(label[None, :, :, None], window).flatten(1)  # [nw, w^2]
    differs = windows[:, :, None] != windows[:, None, :]
    return torch.zeros(differs.shape).masked_fill(differs, MASKED)


def _relative_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[heads, queries, keys] bias of ``table`` [entries, heads] at ``index`` [queries, keys]."""
    return table[index.flatten()].view(*index.shape, -1).permute(2, 0, 1)


class ChannelAttention(nn.Module):
    """RCAN's channel attention: x times a sigmoid gate from its global average (squeeze factor)."""

    def __init__(self, num_feat: int, squeeze_factor: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class ChannelAttentionBlock(nn.Module):
    """HAT's CAB: conv (dim -> dim / compress_ratio), GELU, conv back, channel attention."""

    def __init__(self, num_feat: int, compress_ratio: int, squeeze_factor: int):
        super().__init__()
        hidden = num_feat // compress_ratio
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, hidden, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(hidden, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class WindowSelfAttention(nn.Module):
    """Multi-head self-attention inside w x w windows with a learned relative-position bias, or with
    RoPE (``rope``: ``rope_freqs``, positions of the w x w window, no bias; archs/rope.py)."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool, qk_scale: float | None, rope: bool):
        super().__init__()
        self.num_heads, self.rope = num_heads, rope
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        if rope:
            add_rotary_positions(self, num_heads, dim // num_heads, window)
        else:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
            trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """x: [B*nw, n, C] windows; index: [n, n] (None with RoPE); mask: [nw, n, n] or None -> [B*nw, n, C]."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.rope:
            rotation = owner_rotations(self)
            out = F.scaled_dot_product_attention(rotate(q, rotation), rotate(k, rotation), v, scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(bw, n, c))
        bias = _relative_bias(self.relative_position_bias_table, index)[None]  # [1, heads, n, n]
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias[None] + mask[None, :, None]).expand(bw // nw, -1, -1, -1, -1).reshape(bw, -1, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class HybridAttentionBlock(nn.Module):
    """HAB: (shifted) window attention plus ``conv_scale`` x CAB on the normed input, then an MLP."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        shift: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop_path: float,
        rope: bool = False,
    ):
        super().__init__()
        self.window, self.shift, self.conv_scale = window, shift, conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowSelfAttention(dim, window, num_heads, qkv_bias, qk_scale, rope)
        self.conv_block = ChannelAttentionBlock(dim, compress_ratio, squeeze_factor)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], index: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: [B, h*w, C] tokens of an h x w map (multiples of the window); shifted windows are masked
        when ``mask`` is given (None with RoPE, as the official RoPE HAT: they attend across the wrap)."""
        h, w = size
        b, _, c = x.shape
        normed = self.norm1(x).view(b, h, w, c)
        conv = self.conv_block(normed.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        shifted = torch.roll(normed, (-self.shift, -self.shift), (1, 2)) if self.shift else normed
        windows = window_partition(shifted, self.window).view(-1, self.window**2, c)
        windows = self.attn(windows, index, mask if self.shift else None)
        attn = window_reverse(windows.view(-1, self.window, self.window, c), self.window, h, w)
        if self.shift:
            attn = torch.roll(attn, (self.shift, self.shift), (1, 2))
        x = x + self.drop_path(attn.reshape(b, h * w, c)) + conv * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


class OverlappingCrossAttention(nn.Module):
    """OCAB: queries from w x w windows, keys/values from the overlapping o x o windows around them.

    With ``rope`` the relative-position bias is replaced by RoPE on the raster of the o x o key window:
    keys at their (column, row) there, and the query window's w^2 tokens at the raster's first w^2
    positions (as the official RoPE OCAB numbers them; not their (column, row) when w < o).
    """

    def __init__(
        self,
        dim: int,
        window: int,
        overlap_ratio: float,
        num_heads: int,
        qkv_bias: bool,
        qk_scale: float | None,
        mlp_ratio: float,
        rope: bool = False,
    ):
        super().__init__()
        self.window, self.num_heads, self.rope = window, num_heads, rope
        self.overlap = overlap_window(window, overlap_ratio)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if rope:
            add_rotary_positions(self, num_heads, dim // num_heads, max(window, self.overlap))
        else:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((window + self.overlap - 1) ** 2, num_heads))
            trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def _key_windows(self, t: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] -> [B*nw, o^2, C]: the o x o zero-padded windows centred on each w x w one."""
        b, c = t.shape[:2]
        cols = F.unfold(t, self.overlap, padding=(self.overlap - self.window) // 2, stride=self.window)
        return cols.view(b, c, self.overlap**2, -1).permute(0, 3, 2, 1).reshape(-1, self.overlap**2, c)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[N, n, C] -> [N, heads, n, C / heads]."""
        return t.view(t.shape[0], t.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, size: tuple[int, int], index: torch.Tensor | None) -> torch.Tensor:
        """x: [B, h*w, C] tokens; index: [w^2, o^2] rows of the bias table (None with RoPE)."""
        h, w = size
        b, _, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, h, w, 3, c).unbind(3)
        q = self._heads(window_partition(q, self.window).view(-1, self.window**2, c))
        k, v = (self._heads(self._key_windows(t.permute(0, 3, 1, 2))) for t in (k, v))
        if self.rope:
            rotation = owner_rotations(self)
            out = F.scaled_dot_product_attention(rotate(q, rotation), rotate(k, rotation), v, scale=self.scale)
        else:
            bias = _relative_bias(self.relative_position_bias_table, index)[None].to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.transpose(1, 2).reshape(-1, self.window, self.window, c)
        x = self.proj(window_reverse(out, self.window, h, w).reshape(b, h * w, c)) + x
        return x + self.mlp(self.norm2(x))


class AttentionBlocks(nn.Module):
    """The blocks of one RHAG: HABs alternating unshifted / shifted windows, then one OCAB."""

    def __init__(self, blocks: list[HybridAttentionBlock], overlap_attn: OverlappingCrossAttention):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.overlap_attn = overlap_attn

    def forward(self, x, size, index_sa, index_oca, mask):
        for block in self.blocks:
            x = block(x, size, index_sa, mask)
        return self.overlap_attn(x, size, index_oca)


class ResidualHybridAttentionGroup(nn.Module):
    """RHAG: attention blocks, then a 3x3 conv (or identity) on the map, plus the group's input."""

    def __init__(self, residual_group: AttentionBlocks, dim: int, resi_connection: str):
        super().__init__()
        self.residual_group = residual_group
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if resi_connection == '1conv' else nn.Identity()

    def forward(self, x, size, index_sa, index_oca, mask):
        b, _, c = x.shape
        y = self.residual_group(x, size, index_sa, index_oca, mask)
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """[B, C, h, w] -> [B, h*w, C] tokens, LayerNorm'd when ``patch_norm`` (HAT's patch size 1)."""

    def __init__(self, dim: int, patch_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if patch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class HATEncoder(nn.Module):
    """HAT without its reconstruction head (encoder ``'hat'``); parameter names are HAT's.

    The input is reflect-padded at the bottom/right to a multiple of ``window_size`` (as HAT's test
    code and ContinuousSR's ``check_image_size``; replicate where the image is smaller than the
    padding) and the features are cropped back, so any size works. Defaults are HAT's SRx4
    configuration (~20.6M parameters with its head); HAT-L is ``depths``/``num_heads`` of 12 groups,
    GSASR's HAT-L additionally ``embed_dim`` 192, ``squeeze_factor`` 32 and ``out_feat`` 64
    (docs/architecture.md, "HAT encoder"), and its released model (``HATNOUP_ROPE_AMP``) ``rope``.

    Args:
        embed_dim (int): Feature channels. Default: 180.
        depths (Sequence[int]): HABs per RHAG. Default: [6] * 6.
        num_heads (Sequence[int]): Attention heads per RHAG. Default: [6] * 6.
        window_size (int): Attention window side. Default: 16.
        compress_ratio (int): CAB's channel compression. Default: 3.
        squeeze_factor (int): Channel attention's squeeze factor. Default: 30.
        conv_scale (float): Weight of the CAB branch. Default: 0.01.
        overlap_ratio (float): OCAB's key window is ``window_size * (1 + overlap_ratio)``. Default: 0.5.
        mlp_ratio (float): MLP width / embed_dim. Default: 2.
        qkv_bias (bool): Bias of the q/k/v projections. Default: True.
        qk_scale (float | None): Attention scale; None: head_dim ** -0.5. Default: None.
        drop_path_rate (float): Stochastic depth, rising linearly over the HABs (training only). Default: 0.1.
        patch_norm (bool): LayerNorm after the patch embedding. Default: True.
        resi_connection (str): '1conv' or 'identity', after each RHAG and the body. Default: '1conv'.
        out_feat (int | None): If set, end with GSASR's ``HATNOUP`` head: a 3x3 conv to ``out_feat``
            channels + LeakyReLU (``conv_before_upsample``), applied before cropping. Default: None.
        img_size (int): HAT's training patch size; only checked (must exceed ``window_size``, else
            the official HAT builds unshifted blocks). Default: 64.
        use_checkpoint (bool): Gradient checkpointing per RHAG while training. Default: False.
        num_in_ch (int): Input channels. Default: 3.
        rope (bool): GSASR's ``HATNOUP_ROPE_AMP``: rotary position embeddings (learned mixed
            frequencies, :mod:`gaussiansr_arch.archs.rope`) on the queries and keys of both attentions
            instead of the relative-position bias tables, and shifted windows without a mask. The
            head dimension ``embed_dim / num_heads`` must be divisible by 4. Default: False.
    """

    def __init__(
        self,
        embed_dim: int = 180,
        depths: Sequence[int] = (6,) * 6,
        num_heads: Sequence[int] = (6,) * 6,
        window_size: int = 16,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        resi_connection: str = '1conv',
        out_feat: int | None = None,
        img_size: int = 64,
        use_checkpoint: bool = False,
        num_in_ch: int = 3,
        rope: bool = False,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise TypeError(f'depths and num_heads differ in length: {len(depths)} vs {len(num_heads)}')
        if img_size <= window_size:
            raise TypeError(f'img_size ({img_size}) must exceed window_size ({window_size})')
        if resi_connection not in ('1conv', 'identity'):
            raise TypeError(f"resi_connection must be '1conv' or 'identity', not {resi_connection!r}")
        for name, value in (('embed_dim', embed_dim), ('compress_ratio', compress_ratio)):
            if value < 1:
                raise TypeError(f'{name} must be positive, not {value}')
        if embed_dim // compress_ratio < 1 or embed_dim // squeeze_factor < 1:
            raise TypeError(f'compress_ratio / squeeze_factor leave no channels of embed_dim {embed_dim}')
        if any(embed_dim % h for h in num_heads):
            raise TypeError(f'embed_dim {embed_dim} is not divisible by every num_heads {list(num_heads)}')
        if rope and any((embed_dim // h) % 4 for h in num_heads):
            raise TypeError(f'rope needs embed_dim / num_heads divisible by 4, not {embed_dim} / {list(num_heads)}')
        self.window_size, self.rope = window_size, rope
        self.use_checkpoint = use_checkpoint
        self.out_channels = out_feat or embed_dim
        if not rope:  # RoPE attention has no bias table to index (the official RoPE HAT keeps them, unused)
            overlap = overlap_window(window_size, overlap_ratio)
            self.register_buffer('relative_position_index_SA', self_attention_index(window_size))
            self.register_buffer('relative_position_index_OCA', cross_attention_index(window_size, overlap))

        self.conv_first = nn.Conv2d(num_in_ch, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for depth, heads in zip(depths, num_heads, strict=True):
            blocks = [
                HybridAttentionBlock(
                    embed_dim,
                    heads,
                    window_size,
                    window_size // 2 if i % 2 else 0,
                    compress_ratio,
                    squeeze_factor,
                    conv_scale,
                    mlp_ratio,
                    qkv_bias,
                    qk_scale,
                    rates.pop(0),
                    rope,
                )
                for i in range(depth)
            ]
            oca = OverlappingCrossAttention(
                embed_dim, window_size, overlap_ratio, heads, qkv_bias, qk_scale, mlp_ratio, rope
            )
            self.layers.append(ResidualHybridAttentionGroup(AttentionBlocks(blocks, oca), embed_dim, resi_connection))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) if resi_connection == '1conv' else nn.Identity()
        if out_feat:
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, out_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _pad_to_window(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.window_size, (-w) % self.window_size
        if pad_h == 0 and pad_w == 0:
            return x
        mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] (multiples of the window) -> the normed output of the RHAGs, [B, C, h, w]."""
        b, c, h, w = x.shape
        if self.rope:
            mask = index_sa = index_oca = None
        else:
            mask = shifted_window_mask(h, w, self.window_size, self.window_size // 2).to(x.device)
            index_sa, index_oca = self.relative_position_index_SA, self.relative_position_index_OCA
        tokens = self.patch_embed(x)
        for layer in self.layers:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                tokens = checkpoint(layer, tokens, (h, w), index_sa, index_oca, mask, use_reentrant=False)
            else:
                tokens = layer(tokens, (h, w), index_sa, index_oca, mask)
        return self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, num_in_ch, h, w] -> [B, out_channels, h, w]."""
        h, w = x.shape[-2:]
        shallow = self.conv_first(self._pad_to_window(x))
        feat = self.conv_after_body(self.forward_features(shallow)) + shallow
        if hasattr(self, 'conv_before_upsample'):
            feat = self.conv_before_upsample(feat)
        return feat[..., :h, :w]
