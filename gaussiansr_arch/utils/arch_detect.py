"""The ``network_g`` of a bare state dict, from its parameter names and shapes (as spandrel detects archs).

:func:`gaussiansr_arch.load_model` falls back on :func:`detect_network_opt` for weights that record
no ``network_g`` (a bare state dict, a BasicSR ``net_g_*.pth``, a converted file without ``--opt``).
The encoder follows from ``encoder.*`` (EDSR-baseline, RDN, SwinIR, HAT: :func:`detect_encoder`), the
arch from the registered method descriptors (``utils/methods.py``): each method's ``marker`` (a
parameter-name prefix: ``decoder.`` GaussianSR, ``imnet.`` LIIF and MetaSR, ``head.embedding`` GSASR,
``dictionary_embedding.`` ContinuousSR) says which to ask, and its ``detect`` (in its
``archs/<name>_arch.py``, built on :func:`indices` and :func:`mlp_shape`) reads every width, depth
and count from the shapes.

What has no parameters cannot be seen, and takes the arch's default (the paper's configuration):

* GaussianSR ``image_skip``: 'none' (a skip variant detected as such renders without its skip);
* GaussianSR ``splat_channels``: 0 when there is no splatting module, else 8 (the split between
  the Gaussian and bicubic streams has no parameters; any other count is detected as 8);
* GaussianSR ``sigma_range``, ``radius``, ``tau`` (training only) and ``decoder_act`` (gelu for
  'lte', relu for 'mlp'); LIIF ``local_ensemble`` (on) and ``image_skip`` ('none');
* EDSR-baseline ``res_scale``: 1.0 (LIIF's 'edsr' encoder uses 0.1);
* SwinIR ``drop_path_rate`` and the like (training only);
* HAT ``conv_scale`` (0.01, every released HAT), ``img_size`` (64; only checked against the window)
  and ``drop_path_rate``;
* GSASR's RoPE head (``rope``): its ``window_size`` when not wider than the seeds' side (taken equal
  to it, as in every released model; the RoPE positions show only the wider of the two);
* GSASR ``step_size`` (1.2) and ``tolerance``; its EDSR-baseline ``long_skip`` (off, GSASR's default).

Weights written by this package's tools and by training with ``logger.save_safetensors`` record
their ``network_g``; detection is only the fallback. Utils layer: names and shapes only, no import
of the archs (``utils.weights.build_arch`` builds through BasicSR's registry; the descriptors are
registered by the archs when ``gaussiansr_arch`` is imported).
"""

import math
import re
from collections.abc import Mapping

import torch

from gaussiansr_arch.utils.methods import methods
from gaussiansr_arch.utils.weights_error import WeightsError

# SwinIR options and their defaults in SwinIREncoder / BasicSR's SwinIR.
SWINIR_IMG_SIZE = 48


class UnknownLayoutError(WeightsError):
    """A state dict whose names and shapes match no arch of this package."""


def indices(keys, pattern: str) -> list[int]:
    """Sorted distinct integers ``i`` of the keys matching ``pattern`` (a regex with one ``(\\d+)`` group)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := regex.fullmatch(k))})


def mlp_shape(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, list[int], int] | None:
    """(in features, hidden widths, out features) of a ``build_mlp`` Sequential stored under ``prefix``."""
    layers = indices(state, re.escape(prefix) + r'(\d+)\.weight')
    weights = [state[f'{prefix}{i}.weight'] for i in layers]
    if not weights or any(w.dim() != 2 for w in weights):
        return None
    return int(weights[0].shape[1]), [int(w.shape[0]) for w in weights[:-1]], int(weights[-1].shape[0])


# ---------------------------------------------------------------------------- encoders
def _edsr_baseline(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    opt = {'num_feat': int(first.shape[0]), 'num_block': len(indices(enc, r'body\.(\d+)\.conv1\.weight'))}
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    return opt, opt['num_feat']


def _rdn(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    opt = {
        'num_feat': int(first.shape[0]),
        'num_block': len(indices(enc, r'blocks\.(\d+)\.local_fusion\.weight')),
        'num_layer': len(indices(enc, r'blocks\.0\.layers\.(\d+)\.conv\.weight')),
        'growth': int(enc['blocks.0.layers.0.conv.weight'].shape[0]),
    }
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    return opt, opt['num_feat']


def _swinir(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    embed_dim = int(first.shape[0])
    layers = indices(enc, r'layers\.(\d+)\.residual_group\.blocks\.0\.attn\.relative_position_bias_table')
    depths = [len(indices(enc, rf'layers\.{i}\.residual_group\.blocks\.(\d+)\.attn\.qkv\.weight')) for i in layers]
    block = 'layers.0.residual_group.blocks.0.'
    tables = [enc[f'layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table'] for i in layers]
    window_size = (math.isqrt(int(tables[0].shape[0])) + 1) // 2  # the table has (2 ws - 1)^2 rows
    opt = {
        'embed_dim': embed_dim,
        'depths': depths,
        'num_heads': [int(t.shape[1]) for t in tables],
        'window_size': window_size,
        'mlp_ratio': float(enc[f'{block}mlp.fc1.weight'].shape[0]) / embed_dim,
        'resi_connection': '3conv' if 'conv_after_body.0.weight' in enc else '1conv',
    }
    # A shifted block's attention mask is [windows, ws^2, ws^2] for the img_size it was built for.
    masks = [v for k, v in enc.items() if k.endswith('.attn_mask')]
    opt['img_size'] = math.isqrt(int(masks[0].shape[0])) * window_size if masks else SWINIR_IMG_SIZE
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    if f'{block}attn.qkv.bias' not in enc:
        opt['qkv_bias'] = False
    if 'patch_embed.norm.weight' not in enc:
        opt['patch_norm'] = False
    if 'absolute_pos_embed' in enc:
        opt['ape'] = True
    return opt, embed_dim


HAT_IMG_SIZE = 64  # HATEncoder's default img_size (invisible in the weights)


def _hat(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    embed_dim = int(first.shape[0])
    layers = indices(enc, r'layers\.(\d+)\.residual_group\.overlap_attn\.qkv\.weight')
    depths = [len(indices(enc, rf'layers\.{i}\.residual_group\.blocks\.(\d+)\.attn\.qkv\.weight')) for i in layers]
    block = 'layers.0.residual_group.blocks.0.'
    rope = f'{block}attn.rope_freqs' in enc
    if rope:  # RoPE positions: the w x w window's, and the o x o key window's for the OCAB
        window = math.isqrt(int(enc[f'{block}attn.rope_t_x'].shape[0]))
        extra = math.isqrt(int(enc['layers.0.residual_group.overlap_attn.rope_t_x'].shape[0])) - window
        heads_of = 'rope_freqs'  # [2, heads, head_dim / 2]
    else:
        table = enc[f'{block}attn.relative_position_bias_table']
        window = (math.isqrt(int(table.shape[0])) + 1) // 2  # (2 ws - 1)^2 rows
        oca = enc['layers.0.residual_group.overlap_attn.relative_position_bias_table']
        extra = math.isqrt(int(oca.shape[0])) + 1 - 2 * window  # rows: (ws + overlap - 1)^2, overlap = ws + extra
        heads_of = 'relative_position_bias_table'  # [rows, heads]
    ratio = extra / window
    if int(window * ratio) != extra:  # rounding of the division: the smallest ratio giving ``extra``
        ratio = math.nextafter(ratio, math.inf)
    cab = f'{block}conv_block.cab.'
    opt = {
        'embed_dim': embed_dim,
        'depths': depths,
        'num_heads': [int(enc[f'layers.{i}.residual_group.overlap_attn.{heads_of}'].shape[1]) for i in layers],
        'window_size': window,
        # any ratio r with embed_dim // r == the hidden channels builds the same network
        'compress_ratio': embed_dim // int(enc[f'{cab}0.weight'].shape[0]),
        'squeeze_factor': embed_dim // int(enc[f'{cab}3.attention.1.weight'].shape[0]),
        'overlap_ratio': ratio,
        'mlp_ratio': float(enc[f'{block}mlp.fc1.weight'].shape[0]) / embed_dim,
        'resi_connection': '1conv' if 'conv_after_body.weight' in enc else 'identity',
    }
    channels = embed_dim
    if 'conv_before_upsample.0.weight' in enc:
        channels = opt['out_feat'] = int(enc['conv_before_upsample.0.weight'].shape[0])
    if window >= HAT_IMG_SIZE:
        opt['img_size'] = window + 1
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    if f'{block}attn.qkv.bias' not in enc:
        opt['qkv_bias'] = False
    if 'patch_embed.norm.weight' not in enc:
        opt['patch_norm'] = False
    if rope:
        opt['rope'] = True
    return opt, channels


def detect_encoder(enc: Mapping[str, torch.Tensor]) -> tuple[str, dict, int] | None:
    """(name, encoder_opt, out_channels) of ``encoder.*`` parameters without their prefix, or None."""
    if 'conv_first.weight' not in enc:
        return None
    if 'conv_second.weight' in enc and 'blocks.0.layers.0.conv.weight' in enc:
        return ('rdn', *_rdn(enc))
    if 'layers.0.residual_group.overlap_attn.qkv.weight' in enc:
        return ('hat', *_hat(enc))
    if 'layers.0.residual_group.blocks.0.attn.relative_position_bias_table' in enc:
        return ('swinir', *_swinir(enc))
    if 'conv_after_body.weight' in enc and 'body.0.conv1.weight' in enc:
        return ('edsr-baseline', *_edsr_baseline(enc))
    return None


def _names(found) -> str:
    """``'A, B or C'``."""
    found = list(found)
    return found[0] if len(found) == 1 else f'{", ".join(found[:-1])} or {found[-1]}'


def detect_network_opt(state: Mapping[str, torch.Tensor], path: str = 'state dict') -> dict:
    """The ``network_g`` of a state dict of any registered method, from its names and shapes.

    Options without parameters take the defaults listed in this module's docstring (GaussianSR's
    ``image_skip`` 'none', ``splat_channels`` 8 when it has a splatting module ...).

    Args:
        state (Mapping[str, Tensor]): The parameters (without a ``module.`` prefix).
        path (str): The file, for messages.

    Raises:
        UnknownLayoutError (a WeightsError): one line naming the file when the layout matches no arch.
    """

    def unknown(why: str) -> UnknownLayoutError:
        return UnknownLayoutError(
            f'weights file {path}: unknown layout ({why}); give its network_g (the run YAML) to load it'
        )

    enc = {k[len('encoder.') :]: v for k, v in state.items() if k.startswith('encoder.')}
    if not enc:
        first = ', '.join(sorted(state)[:3])
        raise unknown(f'no encoder.* parameters; keys: {first}{", ..." if len(state) > 3 else ""}')
    encoder = detect_encoder(enc)
    if encoder is None:
        raise unknown('an encoder that is neither EDSR-baseline, RDN, SwinIR nor HAT')
    name, encoder_opt, channels = encoder
    known = methods()
    asked = [m for m in known if any(k.startswith(m.marker) for k in state)]
    if not asked:
        markers: dict[str, list[str]] = {}
        for m in known:
            markers.setdefault(m.marker, []).append(m.arch)
        listed = _names([f'{marker}* ({", ".join(archs)})' for marker, archs in markers.items()])
        raise unknown(f'encoder.* only, no {listed}: an encoder-only file')
    for method in asked:
        opt = method.detect(state, channels)
        if opt is not None:
            return {'type': method.arch, 'encoder': name, 'encoder_opt': encoder_opt, **opt}
    shown = _names(sorted({m.marker + '*' for m in asked}))
    raise unknown(f'the {shown} shapes fit no {_names([m.arch for m in asked])}')
