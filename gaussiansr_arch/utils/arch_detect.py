"""The ``network_g`` of a bare state dict, from its parameter names and shapes (as spandrel detects archs).

:func:`gaussiansr_arch.load_model` falls back on :func:`detect_network_opt` for weights that record
no ``network_g`` (a bare state dict, a BasicSR ``net_g_*.pth``, a converted file without ``--opt``).
The arch follows from the key names (``decoder.*``: GaussianSR; ``imnet.*`` ending in 3 outputs:
LIIF; in 9C x 3: MetaSR; ``head.embedding``: GSASR; ``dictionary_embedding.*``: ContinuousSR), the
encoder from ``encoder.*`` (EDSR-baseline, RDN, SwinIR) and every width, depth and count from the shapes.

What has no parameters cannot be seen, and takes the arch's default (the paper's configuration):

* GaussianSR ``image_skip``: 'none' (a skip variant detected as such renders without its skip);
* GaussianSR ``splat_channels``: 0 when there is no splatting module, else 8 (the split between
  the Gaussian and bicubic streams has no parameters; any other count is detected as 8);
* GaussianSR ``sigma_range``, ``radius``, ``tau`` (training only) and ``decoder_act`` (gelu for
  'lte', relu for 'mlp'); LIIF ``local_ensemble`` (on) and ``image_skip`` ('none');
* EDSR-baseline ``res_scale``: 1.0 (LIIF's 'edsr' encoder uses 0.1);
* SwinIR ``drop_path_rate`` and the like (training only);
* GSASR ``step_size`` (1.2) and ``tolerance``; its EDSR-baseline ``long_skip`` (off, GSASR's default).

Weights written by this package's tools and by training with ``logger.save_safetensors`` record
their ``network_g``; detection is only the fallback. Utils layer: names and shapes only, no import
of the archs (``utils.weights.build_arch`` builds through BasicSR's registry).
"""

import math
import re
from collections.abc import Mapping

import torch

from gaussiansr_arch.utils.weights import WeightsError

# splat_channels assumed when a GaussianSR has a splatting module (the paper's, GaussianSR's default).
DEFAULT_SPLAT_CHANNELS = 8
# SwinIR options and their defaults in SwinIREncoder / BasicSR's SwinIR.
SWINIR_IMG_SIZE = 48


class UnknownLayoutError(WeightsError):
    """A state dict whose names and shapes match no arch of this package."""


def _indices(keys, pattern: str) -> list[int]:
    """Sorted distinct integers ``i`` of the keys matching ``pattern`` (a regex with one ``(\\d+)`` group)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := regex.fullmatch(k))})


def _mlp(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, list[int], int] | None:
    """(in features, hidden widths, out features) of a ``build_mlp`` Sequential stored under ``prefix``."""
    layers = _indices(state, re.escape(prefix) + r'(\d+)\.weight')
    weights = [state[f'{prefix}{i}.weight'] for i in layers]
    if not weights or any(w.dim() != 2 for w in weights):
        return None
    return int(weights[0].shape[1]), [int(w.shape[0]) for w in weights[:-1]], int(weights[-1].shape[0])


# ---------------------------------------------------------------------------- encoders
def _edsr_baseline(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    opt = {'num_feat': int(first.shape[0]), 'num_block': len(_indices(enc, r'body\.(\d+)\.conv1\.weight'))}
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    return opt, opt['num_feat']


def _rdn(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    opt = {
        'num_feat': int(first.shape[0]),
        'num_block': len(_indices(enc, r'blocks\.(\d+)\.local_fusion\.weight')),
        'num_layer': len(_indices(enc, r'blocks\.0\.layers\.(\d+)\.conv\.weight')),
        'growth': int(enc['blocks.0.layers.0.conv.weight'].shape[0]),
    }
    if first.shape[1] != 3:
        opt['num_in_ch'] = int(first.shape[1])
    return opt, opt['num_feat']


def _swinir(enc: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    first = enc['conv_first.weight']
    embed_dim = int(first.shape[0])
    layers = _indices(enc, r'layers\.(\d+)\.residual_group\.blocks\.0\.attn\.relative_position_bias_table')
    depths = [len(_indices(enc, rf'layers\.{i}\.residual_group\.blocks\.(\d+)\.attn\.qkv\.weight')) for i in layers]
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


def detect_encoder(enc: Mapping[str, torch.Tensor]) -> tuple[str, dict, int] | None:
    """(name, encoder_opt, out_channels) of ``encoder.*`` parameters without their prefix, or None."""
    if 'conv_first.weight' not in enc:
        return None
    if 'conv_second.weight' in enc and 'blocks.0.layers.0.conv.weight' in enc:
        return ('rdn', *_rdn(enc))
    if 'layers.0.residual_group.blocks.0.attn.relative_position_bias_table' in enc:
        return ('swinir', *_swinir(enc))
    if 'conv_after_body.weight' in enc and 'body.0.conv1.weight' in enc:
        return ('edsr-baseline', *_edsr_baseline(enc))
    return None


# ---------------------------------------------------------------------------- archs
def _gaussiansr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    opt: dict = {'type': 'GaussianSR'}
    classifier = state.get('splatting.classifier.weight')
    if classifier is None:
        opt['splat_channels'] = 0
    else:
        opt['splat_channels'] = min(DEFAULT_SPLAT_CHANNELS, channels)
        opt['bank_size'] = int(classifier.shape[0])
    mlp = _mlp(state, 'decoder.mlp.')
    if mlp is None or mlp[2] != 3:
        return None
    if 'decoder.coef.weight' in state:
        opt['decoder'] = 'lte'
        opt['num_freq'] = int(state['decoder.coef.weight'].shape[0])
    else:
        opt['decoder'] = 'mlp'
    opt['decoder_hidden'] = mlp[1]
    return opt


def _liif_or_metasr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    mlp = _mlp(state, 'imnet.')
    if mlp is None:
        return None
    in_dim, hidden, out_dim = mlp
    if out_dim == 3:
        # LIIF's first layer reads [latent code (C, or 9C unfolded), rel_coord (2), rel_cell (2, cell_decode)].
        for feat_unfold in (True, False):
            code = channels * (9 if feat_unfold else 1)
            if in_dim - 2 - code in (0, 2):
                return {
                    'type': 'LIIF',
                    'hidden': hidden,
                    'feat_unfold': feat_unfold,
                    'local_ensemble': True,
                    'cell_decode': in_dim - 2 - code == 2,
                }
        return None
    if in_dim == 3 and out_dim == 27 * channels:  # (rel_coord, 1/scale) -> a [9C, 3] filter
        return {'type': 'MetaSR', 'hidden': hidden}
    return None


def _gsasr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """GSASR's head options from ``head.*`` (``archs/gsasr_head.py`` names); None if they do not fit."""
    embedding = state.get('head.embedding')
    feat_proj = state.get('head.feat_proj.0.weight')
    if embedding is None or embedding.dim() != 2 or feat_proj is None or feat_proj.shape[1] != channels:
        return None
    num_seeds, width = (int(n) for n in embedding.shape)
    injection = _indices(state, r'head\.injection_blocks\.(\d+)\.norm\.weight')
    interaction = _indices(state, r'head\.interaction_blocks\.(\d+)\.norm\.weight')
    tables = [k for k in state if k.startswith('head.') and k.endswith('.relative_position_bias_table')]
    cross_index = state.get('head.injection_blocks.0.layers.0.attn.relative_position_index')
    upsample = [state[f'head.upsample.{i}.weight'] for i in _indices(state, r'head\.upsample\.(\d+)\.weight')]
    if not tables or cross_index is None or not upsample:
        return None
    return {
        'type': 'GSASR',
        'channels': width,
        'num_heads': int(state[tables[0]].shape[1]),
        'injection_blocks': len(injection),
        'injection_layers': len(_indices(state, r'head\.injection_blocks\.0\.layers\.(\d+)\.attn_norm\.weight')),
        'interaction_blocks': len(interaction),
        'interaction_layers': len(_indices(state, r'head\.interaction_blocks\.0\.layers\.(\d+)\.attn_norm\.weight')),
        'num_seeds': num_seeds,
        'window_size': math.isqrt(int(cross_index.shape[1])),  # [seeds, window^2]
        'shuffle_scales': [math.isqrt(int(w.shape[0]) // width) for w in upsample],  # conv to C f^2 channels
    }


def _continuoussr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """ContinuousSR's head widths (``archs/continuoussr_arch.py`` names); None if they do not fit."""
    head = state.get('upsampler.conv_before_upsample.0.weight')
    conv = state.get('covariance_conv.weight')
    mlps = {name: _mlp(state, f'{name}.') for name in ('colour_mlp', 'offset_mlp', 'dictionary_embedding')}
    if head is None or conv is None or head.shape[1] != channels or any(m is None for m in mlps.values()):
        return None
    return {
        'type': 'ContinuousSR',
        'num_feat': int(head.shape[0]),
        'embed_dim': int(conv.shape[0]),
        'colour_hidden': mlps['colour_mlp'][1],
        'offset_hidden': mlps['offset_mlp'][1],
        'dictionary_hidden': mlps['dictionary_embedding'][1],
    }


def detect_network_opt(state: Mapping[str, torch.Tensor], path: str = 'state dict') -> dict:
    """The ``network_g`` of a GaussianSR / LIIF / MetaSR state dict, from its names and shapes.

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
        raise unknown('an encoder that is neither EDSR-baseline, RDN nor SwinIR')
    name, encoder_opt, channels = encoder
    if 'head.embedding' in state:
        opt = _gsasr(state, channels)
    elif 'dictionary_embedding.0.weight' in state:
        opt = _continuoussr(state, channels)
    elif any(k.startswith('decoder.') for k in state):
        opt = _gaussiansr(state, channels)
    elif any(k.startswith('imnet.') for k in state):
        opt = _liif_or_metasr(state, channels)
    else:
        raise unknown(
            'encoder.* only, no decoder.* (GaussianSR), imnet.* (LIIF, MetaSR) or head.* (GSASR): an encoder-only file'
        )
    if opt is None:
        raise unknown('decoder/imnet/head shapes match neither GaussianSR, LIIF, MetaSR nor GSASR')
    return {'type': opt.pop('type'), 'encoder': name, 'encoder_opt': encoder_opt, **opt}
