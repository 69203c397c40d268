"""Feature encoders (no upsampler) shared by every arbitrary-scale arch of the package.

Each encoder maps a normalised LR image [B,3,h,w] (RGB scaled to [-1, 1]) to features
[B,C,h,w] of the same spatial size and exposes ``out_channels``. ``build_encoder(name, **opt)``
builds one from a YAML-friendly name ('edsr-baseline', 'rdn', 'swinir', 'hat'). HAT's encoder
lives in ``hat_encoder.py`` (it reads the image as the arch gives it, as ContinuousSR and GSASR feed it).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import ResidualBlockNoBN, make_layer
from basicsr.archs.swinir_arch import SwinIR
from torch import nn

from gaussiansr_arch.archs.hat_encoder import HATEncoder


class EDSRBaselineEncoder(nn.Module):
    """EDSR-baseline without its upsampler (LIIF's ``edsr-baseline``, ``no_upsampling``).

    conv -> ``num_block`` residual blocks (BasicSR's ResidualBlockNoBN) -> conv, plus a
    long skip from the first conv. Input is expected normalised as (x - 0.5) / 0.5, as LIIF.

    Args:
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Residual blocks. Default: 16.
        res_scale (float): Residual scale of the blocks. Default: 1.
        num_in_ch (int): Input channels. Default: 3.
        long_skip (bool): Add the first conv's output to the body's (EDSR's long skip). False
            returns the body's output alone, as GSASR's official ``EDSRNOUP`` does. Default: True.
    """

    def __init__(
        self,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        num_in_ch: int = 3,
        long_skip: bool = True,
    ):
        super().__init__()
        self.out_channels = num_feat
        self.long_skip = bool(long_skip)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale, pytorch_init=True)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        """x: [B,3,h,w] normalised LR -> [B,num_feat,h,w]."""
        feat = self.conv_first(x)
        out = self.conv_after_body(self.body(feat))
        return out + feat if self.long_skip else out


class DenseLayer(nn.Module):
    """One layer of a residual dense block: conv3x3 + ReLU whose output is appended to its input.

    Args:
        in_channels (int): Channels of the growing concatenation so far.
        growth (int): Channels this layer adds (G).
    """

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, growth, 3, 1, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,Cin,h,w] -> [B,Cin+G,h,w]."""
        return torch.cat([x, self.act(self.conv(x))], dim=1)


class ResidualDenseBlock(nn.Module):
    """Residual dense block of RDN (Zhang et al. 2018): C dense layers, 1x1 local fusion, skip.

    Args:
        num_feat (int): Block input/output channels (G0).
        growth (int): Channels added per dense layer (G).
        num_layer (int): Dense layers per block (C).
    """

    def __init__(self, num_feat: int, growth: int, num_layer: int):
        super().__init__()
        self.layers = nn.Sequential(*[DenseLayer(num_feat + i * growth, growth) for i in range(num_layer)])
        self.local_fusion = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,G0,h,w] -> [B,G0,h,w]."""
        return self.local_fusion(self.layers(x)) + x


class RDNEncoder(nn.Module):
    """RDN without its upsampler, as LIIF's ``rdn`` encoder (``no_upsampling``).

    Two shallow convs, ``num_block`` residual dense blocks, global feature fusion (1x1 conv
    over the concatenated block outputs, then 3x3 conv) and a global skip from the first conv.
    Defaults are RDN's configuration B (D=16, C=8, G=64) with G0=64.

    Args:
        num_feat (int): G0, channels between blocks and of the output. Default: 64.
        num_block (int): D, residual dense blocks. Default: 16.
        num_layer (int): C, dense layers per block. Default: 8.
        growth (int): G, growth rate of the dense layers. Default: 64.
        num_in_ch (int): Input channels. Default: 3.
    """

    def __init__(
        self, num_feat: int = 64, num_block: int = 16, num_layer: int = 8, growth: int = 64, num_in_ch: int = 3
    ):
        super().__init__()
        self.out_channels = num_feat
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.conv_second = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.blocks = nn.ModuleList([ResidualDenseBlock(num_feat, growth, num_layer) for _ in range(num_block)])
        self.global_fusion = nn.Sequential(
            nn.Conv2d(num_block * num_feat, num_feat, 1, 1, 0), nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B,3,h,w] normalised LR -> [B,num_feat,h,w]."""
        shallow = self.conv_first(x)
        feat = self.conv_second(shallow)
        outputs = []
        for block in self.blocks:
            feat = block(feat)
            outputs.append(feat)
        return self.global_fusion(torch.cat(outputs, dim=1)) + shallow


class SwinIREncoder(SwinIR):
    """SwinIR without its reconstruction head, as LTE's ``swinir`` encoder for arbitrary scale.

    Reuses BasicSR's SwinIR for conv_first, the residual Swin transformer blocks
    (``forward_features``) and conv_after_body with the long skip; the parameter names match
    SwinIR's so its checkpoints load. SwinIR's ``conv_last`` is deleted (it would be an unused
    parameter, which DDP rejects), and its mean subtraction / ``img_range`` scaling is not
    applied: GaussianSR already feeds input normalised to [-1, 1].

    The input is reflect-padded at the bottom/right to a multiple of ``window_size`` (as
    SwinIR's ``check_image_size``) and the features cropped back, so any size works. Inputs
    smaller than the padding cannot be reflected; they are replicate-padded instead.

    Args:
        embed_dim (int): Feature channels, also ``out_channels``. Default: 180.
        depths (Sequence[int]): Swin layers per residual group. Default: [6] * 6.
        num_heads (Sequence[int]): Attention heads per residual group. Default: [6] * 6.
        window_size (int): Attention window. Default: 8.
        mlp_ratio (float): MLP width / embed_dim. Default: 2.
        resi_connection (str): '1conv' or '3conv' after the body. Default: '1conv'.
        img_size (int): Size the attention masks are precomputed for (others are computed on
            the fly); must exceed ``window_size`` or SwinIR disables shifted windows. Default: 48.
        num_in_ch (int): Input channels. Default: 3.
        **kwargs: Further SwinIR options (drop_path_rate, qkv_bias, ape, patch_norm, ...).
    """

    def __init__(
        self,
        embed_dim: int = 180,
        depths: Sequence[int] = (6,) * 6,
        num_heads: Sequence[int] = (6,) * 6,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        resi_connection: str = '1conv',
        img_size: int = 48,
        num_in_ch: int = 3,
        **kwargs,
    ):
        for key in ('upscale', 'upsampler', 'img_range'):
            if key in kwargs:
                raise TypeError(f'SwinIREncoder has no reconstruction head; option {key!r} is not accepted')
        if len(depths) != len(num_heads):
            raise TypeError(f'depths and num_heads differ in length: {len(depths)} vs {len(num_heads)}')
        if img_size <= window_size:
            raise TypeError(f'img_size ({img_size}) must exceed window_size ({window_size})')
        super().__init__(
            img_size=img_size,
            in_chans=num_in_ch,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            upsampler='',
            resi_connection=resi_connection,
            **kwargs,
        )
        del self.conv_last  # the only head module SwinIR builds for upsampler=''
        self.window_size = window_size
        self.out_channels = embed_dim

    def _pad_to_window(self, x: torch.Tensor) -> torch.Tensor:
        """Pad bottom/right so both sides are multiples of ``window_size``."""
        h, w = x.shape[-2:]
        pad_h = (-h) % self.window_size
        pad_w = (-w) % self.window_size
        if pad_h == 0 and pad_w == 0:
            return x
        mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B,3,h,w] normalised LR -> [B,embed_dim,h,w]."""
        h, w = x.shape[-2:]
        shallow = self.conv_first(self._pad_to_window(x))
        feat = self.conv_after_body(self.forward_features(shallow)) + shallow
        return feat[..., :h, :w]


ENCODERS = {
    'edsr-baseline': EDSRBaselineEncoder,
    'rdn': RDNEncoder,
    'swinir': SwinIREncoder,
    'hat': HATEncoder,
}


def build_encoder(name: str, **opt) -> nn.Module:
    """Build an encoder by name ('edsr-baseline', 'rdn', 'swinir', 'hat') with its options.

    Raises:
        ValueError: unknown name (lists the known ones) or unknown option keys.
    """
    if name not in ENCODERS:
        raise ValueError(f'unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}')
    try:
        return ENCODERS[name](**opt)
    except TypeError as err:
        raise ValueError(f'bad encoder_opt for {name!r}: {err}') from None
