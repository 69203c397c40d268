"""Feature encoders (no upsampler) shared by every arbitrary-scale arch of the package.

Each encoder maps a normalised LR image [B,3,h,w] to features [B,C,h,w] and exposes
``out_channels``. ``build_encoder(name, **opt)`` builds one from a YAML-friendly name.
"""

from torch import nn

from basicsr.archs.arch_util import ResidualBlockNoBN, make_layer


class EDSRBaselineEncoder(nn.Module):
    """EDSR-baseline without its upsampler (LIIF's ``edsr-baseline``, ``no_upsampling``).

    conv -> ``num_block`` residual blocks (BasicSR's ResidualBlockNoBN) -> conv, plus a
    long skip from the first conv. Input is expected normalised as (x - 0.5) / 0.5, as LIIF.

    Args:
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Residual blocks. Default: 16.
        res_scale (float): Residual scale of the blocks. Default: 1.
        num_in_ch (int): Input channels. Default: 3.
    """

    def __init__(self, num_feat: int = 64, num_block: int = 16, res_scale: float = 1.0, num_in_ch: int = 3):
        super().__init__()
        self.out_channels = num_feat
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale,
                               pytorch_init=True)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        """x: [B,3,h,w] normalised LR -> [B,num_feat,h,w]."""
        feat = self.conv_first(x)
        return self.conv_after_body(self.body(feat)) + feat


ENCODERS = {
    'edsr-baseline': EDSRBaselineEncoder,
}


def build_encoder(name: str, **opt) -> nn.Module:
    """Build an encoder by name ('edsr-baseline', 'rdn', 'swinir') with its options.

    Raises:
        ValueError: unknown name (lists the known ones) or unknown option keys.
    """
    if name not in ENCODERS:
        raise ValueError(f'unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}')
    try:
        return ENCODERS[name](**opt)
    except TypeError as err:
        raise ValueError(f'bad encoder_opt for {name!r}: {err}') from None
