"""Convert the two official GSASR weight files (encoder + Gaussian head) to one BasicSR weights file.

    gaussiansr-convert-gsasr net_g.pth net_fea2gs.pth GSASR_EDSR-baseline_official.safetensors

The official training saves the encoder (``network_g``: ``EDSRNOUP``, ``RDNNOUP`` or ``HATNOUP``) and the head
(``network_fea2gs``: ``Fea2GS``) separately, each with ``params`` and ``params_ema``. The output holds
``params`` (our :class:`~gaussiansr_arch.archs.gsasr_arch.GSASR`'s names) and the ``network_g`` read
from the shapes (channels, heads, blocks, layers, seeds, window, shuffle factors, encoder depth), so
``gaussiansr_arch.load_model``, ``gaussiansr-upscale --weights`` and ``strict_load_g: true`` use it
alone. ``--param-key`` picks the set in both inputs (default: ``params_ema`` if present, else
``params``, else a bare state dict). ``HATNOUP`` (HAT's body and the first conv + LeakyReLU of its
head, ``conv_before_upsample``) keeps its names as our ``hat`` encoder with ``out_feat``. The released
"enhanced" models (HAT-L: ``HATNOUP_ROPE_AMP`` + ``Fea2GS_ROPE_AMP``; EDSR/RDN with ``Fea2GS_ROPE_AMP``)
have rotary position embeddings (``rope_freqs``) instead of the relative-position biases: they become
``encoder_opt.rope`` and ``rope`` (docs/gsasr.md); the RoPE HAT's two relative-position indices, which
it computes but never reads, are dropped.

What changes besides names (all exact, see :mod:`gaussiansr_arch.archs.gsasr_head`):

* the attention to the scale embedding keeps only its value rows of ``in_proj_weight`` /
  ``in_proj_bias`` and ``out_proj``; its query/key rows and the LayerNorm feeding only its query
  (``norm1`` of the injection layers, ``norm3`` of the interaction layers) are dropped: they do not
  affect the output;
* the offset head's last layer is reordered to (row, col) (the official outputs (x, y)).

``step_size`` (the official ``default_step_size``) is not in the weights: the paper's 1.2 is used.
Written atomically by :func:`gaussiansr_arch.utils.weights.save_weights` (``.pth`` or
``.safetensors``); an existing output is replaced only with ``--force``. Errors are one line on
stderr with exit status 2, as for every tool.
"""

import argparse
import os
import re
import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.liif_layout import RDN_KEYS
from gaussiansr_arch.tools.common import Tool, ToolError, check_output_dir, check_output_free, writing
from gaussiansr_arch.utils.arch_detect import UnknownLayoutError, detect_network_opt
from gaussiansr_arch.utils.weights import (
    DEFAULT_PARAM_KEYS,
    TORCH_SUFFIXES,
    build_arch,
    check_fits,
    is_safetensors,
    pick_state_dict,
    read_weights,
    save_weights,
)

PROG = 'gaussiansr-convert-gsasr'

# Fea2GS top-level modules -> GaussianHead's.
HEAD_MODULES = {
    'gs_embedding': 'embedding',
    'pos_embedding': 'pos_embedding',
    'img_feat_proj': 'feat_proj',
    'scale_mlp': 'scale_mlp',
    'UPNet': 'upsample',
    'mlp_block_sigma': 'sigma_head',
    'mlp_block_rho': 'rho_head',
    'mlp_block_alpha': 'opacity_head',
    'mlp_block_rgb': 'colour_head',
    'mlp_block_mean': 'offset_head',
    'conv_final': 'conv_final',  # Fea2GS_ROPE_AMP only
}
# Block lists: official name -> (ours, per-layer module names official -> ours).
BLOCKS = {
    'window_crossattn_blocks': (
        'injection_blocks',
        {
            'norm2': 'scale_ffn_norm',
            'mlp_crossattn_scale': 'scale_ffn',
            'norm3': 'attn_norm',
            'window_cross_attn': 'attn',
            'norm4': 'feat_ffn_norm',
            'mlp_crossattn_feature': 'feat_ffn',
        },
    ),
    'gs_selfattn_blocks': (
        'interaction_blocks',
        {
            'norm4': 'scale_ffn_norm',
            'mlp_crossattn': 'scale_ffn',
            'norm1': 'attn_norm',
            'gs_self_attn': 'attn',
            'norm2': 'attn_ffn_norm',
            'mlp_selfattn': 'attn_ffn',
        },
    ),
}
# LayerNorms that only fed the query of the scale attention (no effect on the output): dropped.
DEAD_NORMS = {'window_crossattn_blocks': 'norm1', 'gs_selfattn_blocks': 'norm3'}
SCALE_ATTENTION = 'gs_cross_attn_scale'
ATTENTION_PROJECTIONS = {'qhead': 'q', 'khead': 'k', 'vhead': 'v'}
_LAYER_KEY = re.compile(r'^(\w+)\.(\d+)\.blocks\.(\d+)\.(\w+)\.(.+)$')
_BLOCK_KEY = re.compile(r'^(\w+)\.(\d+)\.(norm|mlp|conv)\.(.+)$')  # conv: Fea2GS_ROPE_AMP only
_EDSR_KEY = re.compile(r'^(conv_first|conv_after_body|body\.\d+\.conv[12])\.(weight|bias)$')
# A key only HAT has (its overlapping cross-attention); HATNOUP's names are our HATEncoder's.
_HAT_KEY = 'layers.0.residual_group.overlap_attn.'
_ROPE_KEY = 'rope_freqs'
# Buffers of HATNOUP_ROPE_AMP that its RoPE attention never reads (our RoPE HAT does not have them).
_ROPE_HAT_UNUSED = ('relative_position_index_SA', 'relative_position_index_OCA')


def convert_encoder(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """``EDSRNOUP``, ``RDNNOUP`` or ``HATNOUP`` parameters -> our encoder's, with the ``encoder.`` prefix.

    Raises:
        ToolError: another encoder (keys listed).
    """
    if any(k.startswith(_HAT_KEY) for k in sd):
        rope = any(k.endswith(_ROPE_KEY) for k in sd)  # HATNOUP_ROPE_AMP
        return OrderedDict(('encoder.' + k, v) for k, v in sd.items() if not (rope and k in _ROPE_HAT_UNUSED))
    out = OrderedDict()
    if 'SFENet1.weight' in sd:
        for key, value in sd.items():
            for pattern, name in RDN_KEYS:  # RDNNOUP names -> RDNEncoder's
                if pattern.match(key):
                    out['encoder.' + pattern.sub(name, key)] = value
                    break
            else:
                raise ToolError(f'unexpected RDNNOUP key {key!r}')
        return out
    unexpected = [k for k in sd if not _EDSR_KEY.match(k)]
    if unexpected or 'conv_first.weight' not in sd:
        shown = unexpected[:3] or sorted(sd)[:3]
        raise ToolError(f'encoder keys {shown} are neither EDSRNOUP, RDNNOUP nor HATNOUP (the encoders GSASR ships)')
    return OrderedDict(('encoder.' + k, v) for k, v in sd.items())


def _layer_entries(block_list: str, rest: str, module: str, key: str, value: torch.Tensor):
    """(our key suffix, tensor) pairs of one parameter of a layer (``module.key``); [] when dropped."""
    if module == SCALE_ATTENTION:
        if key in ('in_proj_weight', 'in_proj_bias'):  # rows: query, key, value
            channels = value.shape[0] // 3
            return [(f'scale_injection.value.{key[len("in_proj_") :]}', value[2 * channels :])]
        if key.startswith('out_proj.'):
            return [(f'scale_injection.{key}', value)]
        raise ToolError(f'unexpected key {rest}')
    if module == DEAD_NORMS[block_list]:
        return []
    names = BLOCKS[block_list][1]
    if module not in names:
        raise ToolError(f'unexpected key {rest}')
    first, _, tail = key.partition('.')
    if names[module] == 'attn' and first in ATTENTION_PROJECTIONS:
        key = f'{ATTENTION_PROJECTIONS[first]}.{tail}'
    return [(f'{names[module]}.{key}', value)]


def convert_head(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """``Fea2GS`` parameters (and buffers) -> :class:`GaussianHead`'s, with the ``head.`` prefix.

    Raises:
        ToolError: a key that belongs to no known module (named).
    """
    out = OrderedDict()
    for rest, value in sd.items():
        if (m := _LAYER_KEY.match(rest)) and m.group(1) in BLOCKS:
            block_list, block, layer, module, key = m.groups()
            prefix = f'head.{BLOCKS[block_list][0]}.{block}.layers.{layer}.'
            for name, tensor in _layer_entries(block_list, rest, module, key, value):
                out[prefix + name] = tensor
        elif (m := _BLOCK_KEY.match(rest)) and m.group(1) in BLOCKS:
            block_list, block, module, key = m.groups()
            out[f'head.{BLOCKS[block_list][0]}.{block}.{module}.{key}'] = value
        else:
            first, _, tail = rest.partition('.')
            if first not in HEAD_MODULES:
                raise ToolError(f'unexpected Fea2GS key {rest!r}')
            if first == 'mlp_block_mean' and tail in ('4.weight', '4.bias'):
                value = value.flip(0)  # official (x, y) -> (row, col)
            out[f'head.{HEAD_MODULES[first]}' + (f'.{tail}' if tail else '')] = value
    return out


def _check_official_head(sd: dict) -> None:
    """ToolError for a head our GSASR cannot hold (``gs_up_factor`` != 1)."""
    sigma = sd.get('mlp_block_sigma.4.weight')
    if sigma is not None and sigma.shape[0] != 2:
        raise ToolError(f'Fea2GS with gs_up_factor != 1 ({sigma.shape[0]} sigma outputs) is not supported')


def convert(
    net_g: str, net_fea2gs: str, dst: str, param_key: str | None = None, force: bool = False
) -> tuple[dict, dict]:
    """Convert the official encoder and head files into ``dst``; returns (params, network_g).

    Raises:
        ToolError, WeightsError: one line naming the file at fault; ``dst`` is then untouched.
    """
    if not is_safetensors(dst) and not dst.lower().endswith(TORCH_SUFFIXES):
        raise ToolError(f'output {dst}: unknown format; name it .safetensors or .pth')
    check_output_free(dst, force)
    check_output_dir(os.path.dirname(dst))
    encoder_sd = pick_state_dict(read_weights(net_g, 'encoder file'), net_g, param_key, 'encoder file')
    head_sd = pick_state_dict(read_weights(net_fea2gs, 'head file'), net_fea2gs, param_key, 'head file')
    try:
        params = convert_encoder(encoder_sd)
    except ToolError as err:
        raise ToolError(f'encoder file {net_g}: {err}') from None
    try:
        _check_official_head(head_sd)
        params.update(convert_head(head_sd))
    except ToolError as err:
        raise ToolError(f'head file {net_fea2gs}: {err}') from None
    try:
        network_g = detect_network_opt(params, f'{net_g} + {net_fea2gs}')
    except UnknownLayoutError:
        raise ToolError(
            f'{net_g} + {net_fea2gs}: not an EDSRNOUP/RDNNOUP/HATNOUP encoder with a Fea2GS head '
            '(the head does not read the encoder channels?)'
        ) from None
    what = f'the weights converted from {net_g} + {net_fea2gs}'
    check_fits(build_arch(network_g, what), params, what, 'the network_g read from their shapes')
    with writing(dst):
        save_weights(dst, params, network_g=network_g)
    return params, network_g


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-convert-gsasr``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Convert the official GSASR weights (encoder network_g + head network_fea2gs) to one BasicSR '
            "weights file ({'params': ..., 'network_g': ...}) for this package's GSASR."
        ),
    )
    parser.add_argument(
        'net_g',
        metavar='NET_G',
        help='official encoder weights (EDSRNOUP / RDNNOUP / HATNOUP / HATNOUP_ROPE_AMP, net_g_*.pth)',
    )
    parser.add_argument(
        'net_fea2gs', metavar='NET_FEA2GS', help='official head weights (Fea2GS or Fea2GS_ROPE_AMP, net_fea2gs_*.pth)'
    )
    parser.add_argument('dst', metavar='OUT', help='output weights (.safetensors or .pth)')
    parser.add_argument(
        '--param-key',
        choices=list(DEFAULT_PARAM_KEYS[::-1]),
        help='parameters to take from both files (default: params_ema if present, else params)',
    )
    parser.add_argument('--force', action='store_true', help='overwrite OUT if it exists')
    return parser


def _run(args: argparse.Namespace) -> dict:
    params, network_g = convert(args.net_g, args.net_fea2gs, args.dst, args.param_key, args.force)
    buffers = ('relative_position_index', 'rope_t_x', 'rope_t_y')
    count = sum(v.numel() for k, v in params.items() if not k.endswith(buffers))
    print(f'wrote {args.dst}: {len(params)} tensors, {count} parameters, {network_g}')
    return network_g


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())
