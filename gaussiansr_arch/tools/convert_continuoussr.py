"""Convert an official ContinuousSR checkpoint to a BasicSR weights file for this package's ``ContinuousSR``.

    gaussiansr-convert-continuoussr ContinuousSR_official.pth experiments/pretrained_models/ContinuousSR_SwinIR.pth

The official checkpoints have LIIF's layout, ``{'model': {'name': 'continuous-gaussian', 'args':
{'encoder_spec': ...}, 'sd': state_dict}}``. The output is ``{'params', 'network_g', 'source'}``:
``path.pretrain_network_g`` + ``strict_load_g: true`` loads it, and ``gaussiansr_arch.load_model``
rebuilds the arch from it alone (``network_g``).

Keys: the official heads ``conv1`` -> ``covariance_conv``, ``mlp_vector.layers.N`` ->
``dictionary_embedding.N``, ``mlp.layers.N`` -> ``colour_mlp.N``, ``mlp_offset.layers.N`` ->
``offset_mlp.N``; the encoder's reconstruction head ``encoder.conv_before_upsample`` /
``encoder.upsample`` -> ``upsampler.*`` (its image conv ``encoder.conv_last``, which the official
forward skips, is dropped); the rest of ``encoder.*`` stays ``encoder.*``, its options read from
the shapes. Encoders: the official ``swinir`` (the paper's) and ``hat`` (the released
``ContinuousSR.pth``'s; our ``HATEncoder`` has its names, docs/architecture.md). The
official EDSR/RDN encoders give LR-size features (``no_upsampling``) or an RGB image, not the 4x
feature map the heads read, so no working official checkpoint can carry them.

Errors are one line on stderr and exit status 2, as for every tool; the output is written
atomically and an existing one is only replaced with ``--force``.
"""

import argparse
import os
import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit import conversion
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    check_output_dir,
    check_output_free,
    writing,
)
from gaussiansr_arch.utils.arch_detect import detect_encoder
from gaussiansr_arch.utils.checkpoint import atomic_torch_save
from gaussiansr_arch.utils.weights import read_weights

PROG = 'gaussiansr-convert-continuoussr'
OFFICIAL_NAME = 'continuous-gaussian'
# Official head prefixes -> ours.
HEAD_PREFIXES = {
    'conv1.': 'covariance_conv.',
    'mlp_vector.layers.': 'dictionary_embedding.',
    'mlp.layers.': 'colour_mlp.',
    'mlp_offset.layers.': 'offset_mlp.',
}
# The encoder's reconstruction head (inside the official encoder) -> our FeatureUpsampler.
FEATURE_HEAD_PREFIXES = {'conv_before_upsample.': 'upsampler.conv_before_upsample.', 'upsample.': 'upsampler.upsample.'}
# Weights of the official encoder that its ContinuousSR forward never uses (the RGB output conv).
UNUSED_ENCODER_PREFIXES = ('conv_last.',)
SUPPORTED_ENCODERS = ('swinir', 'hat')
_NO_4X_FEATURES = "gives LR-size features or an RGB image, not the 4x feature map ContinuousSR's heads read"
UNSUPPORTED_WHY = {
    'edsr-baseline': f'the official EDSR encoder {_NO_4X_FEATURES}',
    'edsr-large': f'the official EDSR encoder {_NO_4X_FEATURES}',
    'rdn': f'the official RDN encoder {_NO_4X_FEATURES}',
}


def split_official(ckpt) -> tuple[str, dict, dict]:
    """Name, args and state dict of an official checkpoint (``{'model': {'name', 'args', 'sd'}}``).

    Raises:
        ToolError: not such a checkpoint, or not a ContinuousSR one.
    """
    name, args, sd = conversion.split_official(ckpt, 'an official ContinuousSR checkpoint')
    if name != OFFICIAL_NAME:
        raise ToolError(f'model {name!r} is not ContinuousSR (expected {OFFICIAL_NAME!r})')
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ToolError("the checkpoint's 'sd' is not a dict of tensors")
    return name, args, sd


def _renamed(sd: dict, prefixes: dict) -> tuple['OrderedDict[str, torch.Tensor]', list[str]]:
    """Keys of ``sd`` starting with a prefix of ``prefixes``, renamed; and the keys matching none."""
    out, rest = OrderedDict(), []
    for key, value in sd.items():
        for old, new in prefixes.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            rest.append(key)
    return out, rest


def convert_heads(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The official heads (everything but ``encoder.*``) renamed to ours.

    Raises:
        ToolError: keys that are neither ``encoder.*`` nor a head (listed).
    """
    heads, rest = _renamed(sd, HEAD_PREFIXES)
    unexpected = [k for k in rest if not k.startswith('encoder.')]
    if unexpected:
        raise ToolError(f'unexpected key(s) {unexpected[:3]} ({len(unexpected)} in all)')
    for official, ours in HEAD_PREFIXES.items():
        if not any(k.startswith(ours) for k in heads):
            raise ToolError(f'no {official}* weights found (our {ours[:-1]})')
    return heads


def convert_encoder(name: str, sd: dict) -> tuple[str, dict, 'OrderedDict[str, torch.Tensor]']:
    """Our encoder name, its options and the ``encoder.*`` + ``upsampler.*`` weights of an official encoder.

    Raises:
        ToolError: an encoder this package cannot hold (named, with the reason), or weights that
            do not have the expected layout.
    """
    if name not in SUPPORTED_ENCODERS:
        why = UNSUPPORTED_WHY.get(name, 'not an encoder this package has')
        raise ToolError(f'encoder {name!r} is not supported: {why} (supported: {list(SUPPORTED_ENCODERS)})')
    enc = {k[len('encoder.') :]: v for k, v in sd.items() if k.startswith('encoder.')}
    head, body = _renamed(enc, FEATURE_HEAD_PREFIXES)
    if 'upsampler.conv_before_upsample.0.weight' not in head:
        raise ToolError('no encoder.conv_before_upsample weights: not a ContinuousSR encoder (pixelshuffle head)')
    body_sd = OrderedDict((k, enc[k]) for k in body if not k.startswith(UNUSED_ENCODER_PREFIXES))
    detected = detect_encoder(body_sd)
    if detected is None or detected[0] != name:
        raise ToolError(f'encoder.* weights are not those of a {name} encoder')
    _, encoder_opt, _ = detected
    params = OrderedDict(('encoder.' + k, v) for k, v in body_sd.items())
    params.update(head)
    return name, encoder_opt, params


def _mlp_widths(params: dict, prefix: str) -> list[int]:
    """Hidden widths of a converted ``build_mlp`` (out features of every Linear but the last)."""
    layers = sorted({int(k[len(prefix) :].split('.')[0]) for k in params if k.startswith(prefix)})
    return [int(params[f'{prefix}{i}.weight'].shape[0]) for i in layers[:-1]]


def network_options(params: dict, encoder: str, encoder_opt: dict) -> dict:
    """The ``network_g`` of converted parameters (widths read from the shapes)."""
    return {
        'type': 'ContinuousSR',
        'encoder': encoder,
        'encoder_opt': encoder_opt,
        'num_feat': int(params['upsampler.conv_before_upsample.0.weight'].shape[0]),
        'embed_dim': int(params['covariance_conv.weight'].shape[0]),
        'colour_hidden': _mlp_widths(params, 'colour_mlp.'),
        'offset_hidden': _mlp_widths(params, 'offset_mlp.'),
        'dictionary_hidden': _mlp_widths(params, 'dictionary_embedding.'),
    }


def convert_checkpoint(ckpt) -> dict:
    """Convert a loaded official checkpoint.

    Returns:
        dict: ``{'params': state_dict, 'network_g': options}``.

    Raises:
        ToolError: not an official ContinuousSR checkpoint, an unsupported encoder, or keys
            that do not fit.
    """
    _, args, sd = split_official(ckpt)
    spec = args.get('encoder_spec') or {}
    name = spec.get('name') if isinstance(spec, dict) else None
    if not name:
        raise ToolError("the checkpoint's args record no encoder_spec name")
    encoder, encoder_opt, params = convert_encoder(name, sd)
    params.update(convert_heads(sd))
    return {'params': params, 'network_g': network_options(params, encoder, encoder_opt)}


def convert_file(src: str, dst: str, force: bool = False) -> dict:
    """Convert ``src`` to a BasicSR weights file at ``dst`` (atomic write).

    Returns:
        dict: What was written.

    Raises:
        ToolError, WeightsError: any problem (one line); ``dst`` is then left untouched.
    """
    check_output_free(dst, force)
    check_output_dir(os.path.dirname(dst))
    ckpt = read_weights(src, 'input checkpoint')
    converted = convert_checkpoint(ckpt)
    conversion.check_loadable(converted, src)
    converted['source'] = {'file': os.path.basename(src)}
    with writing(dst):
        atomic_torch_save(converted, dst)
    return converted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert an official ContinuousSR checkpoint ({'model': {'name', 'args', 'sd'}}) to a "
        "BasicSR weights file ({'params', 'network_g'}) for this package's ContinuousSR.",
    )
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output .pth')
    parser.add_argument('--force', action='store_true', help='overwrite dst if it exists')
    return parser


def _run(args: argparse.Namespace) -> dict:
    converted = convert_file(args.src, args.dst, force=args.force)
    print(f'wrote {args.dst}: {len(converted["params"])} tensors, {converted["network_g"]}')
    return converted


run, main = Tool(build_parser, _run, PROG).entry_points()

if __name__ == '__main__':
    sys.exit(main())
