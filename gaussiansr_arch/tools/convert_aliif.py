"""Convert an official A-LIIF checkpoint to a BasicSR weights file for this package's ``ALIIF``.

    gaussiansr-convert-aliif epoch-last.pth experiments/pretrained_models/ALIIF_EDSR-baseline.pth

The official code (https://github.com/LeeHW-THU/A-LIIF) is LIIF's, and so is its checkpoint layout:
``{'model': {'name': 'liif', 'args': {'encoder_spec', 'imnet_spec', 'pdn_spec', 'basis_spec'},
'sd': state_dict}}``, A-LIIF being LIIF's model with ``imnet_spec`` ``mlp_pw`` (the mixed decoder,
no parameters of its own), ``pdn_spec`` (the expansion MLP) and ``basis_spec`` (the bases). The
output is ``{'params', 'network_g', 'source'}``: ``path.pretrain_network_g`` + ``strict_load_g:
true`` loads it, and ``gaussiansr_arch.load_model`` rebuilds the arch from it alone (``network_g``).

Keys: the encoder as ``gaussiansr-convert-liif`` converts it (``toolkit/liif_layout.py``: EDSR /
EDSR-baseline; the mean shifts and upsampler, unused, are dropped); the expansion MLP
``pdn.layers.N`` -> ``expansion.N``; the bases' flat ``basis.wI`` [K, out * in] -> ``basis.weights.I``
[K, out, in] and ``basis.biasJ`` (from 1) -> ``basis.biases.{J-1}``. Widths are read from the shapes.
A plain LIIF checkpoint (``imnet_spec`` ``mlp``) is refused with a one-line pointer to
``gaussiansr-convert-liif``; other encoders (RDN) with one line.

Errors are one line on stderr and exit status 2, as for every tool; the output is written
atomically and an existing one is only replaced with ``--force``.
"""

import re
import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.conversion import split_official
from gaussiansr_arch.toolkit.liif_layout import encoder_of
from gaussiansr_arch.tools.common import ToolError, converter_tool

PROG = 'gaussiansr-convert-aliif'
OFFICIAL_NAME = 'liif'
OFFICIAL_DECODER = 'mlp_pw'
_EXPANSION = re.compile(r'^pdn\.layers\.(\d+)\.(weight|bias)$')
_BASIS_WEIGHT = re.compile(r'^basis\.w(\d+)$')
_BASIS_BIAS = re.compile(r'^basis\.bias(\d+)$')


def _renamed(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The non-encoder keys under our names, the bases' weights reshaped to [K, out, in].

    Raises:
        ToolError: keys of no known kind (listed), or bases whose shapes do not fit.
    """
    out, weights, biases, unexpected = OrderedDict(), {}, {}, []
    for key, value in sd.items():
        if key.startswith('encoder.'):
            continue
        if m := _EXPANSION.match(key):
            out[f'expansion.{m.group(1)}.{m.group(2)}'] = value
        elif m := _BASIS_WEIGHT.match(key):
            weights[int(m.group(1))] = value
        elif m := _BASIS_BIAS.match(key):
            biases[int(m.group(1)) - 1] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise ToolError(f'unexpected key(s) {unexpected[:3]} ({len(unexpected)} in all)')
    if not weights:
        raise ToolError('no basis.w0: not an A-LIIF state dict')
    layers = list(range(len(weights)))
    if sorted(weights) != layers or sorted(biases) != layers:
        biases_from_1 = [i + 1 for i in sorted(biases)]
        raise ToolError(f'the bases do not fit: weights basis.w{sorted(weights)}, biases basis.bias{biases_from_1}')
    for i in layers:
        w, b = weights[i], biases[i]
        if w.dim() != 2 or b.dim() != 2 or w.shape[0] != b.shape[0] or w.shape[1] % b.shape[1]:
            raise ToolError(f'basis.w{i} {tuple(w.shape)} does not fit basis.bias{i + 1} {tuple(b.shape)}')
        out[f'basis.weights.{i}'] = w.reshape(w.shape[0], b.shape[1], w.shape[1] // b.shape[1])
        out[f'basis.biases.{i}'] = b
    return out


def _hidden_widths(params: dict, prefix: str) -> list[int]:
    """Hidden widths of a converted MLP: out features of every Linear but the last."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.weight')
    idx = sorted(int(m.group(1)) for k in params if (m := pattern.fullmatch(k)))
    return [int(params[f'{prefix}{i}.weight'].shape[0]) for i in idx[:-1]]


def convert_checkpoint(ckpt) -> dict:
    """Convert a loaded official A-LIIF checkpoint.

    Returns:
        dict: ``{'params': state_dict, 'network_g': options}``.

    Raises:
        ToolError: not an official A-LIIF checkpoint, or keys that do not fit.
    """
    name, args, sd = split_official(ckpt, 'an official A-LIIF checkpoint')
    if name != OFFICIAL_NAME:
        raise ToolError(f'model {name!r} is not supported (supported: {OFFICIAL_NAME!r} with {OFFICIAL_DECODER!r})')
    decoder = (args.get('imnet_spec') or {}).get('name')
    if decoder != OFFICIAL_DECODER:
        raise ToolError(
            f"decoder {decoder!r} is not A-LIIF's {OFFICIAL_DECODER!r}: a LIIF checkpoint? use gaussiansr-convert-liif"
        )
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ToolError("the checkpoint's 'sd' is not a dict of tensors")
    encoder, encoder_opt, enc_sd = encoder_of(args, sd)
    params = OrderedDict(('encoder.' + k, v) for k, v in enc_sd.items())
    params.update(_renamed(sd))
    basis = [params[k] for k in params if k.startswith('basis.weights.')]
    network_g = {
        'type': 'ALIIF',
        'encoder': encoder,
        'encoder_opt': encoder_opt,
        'num_basis': int(basis[0].shape[0]),
        'hidden': [int(w.shape[1]) for w in basis[:-1]],
        'expansion_hidden': _hidden_widths(params, 'expansion.'),
    }
    return {'params': params, 'network_g': network_g}


TOOL = converter_tool(PROG, 'A-LIIF', 'ALIIF', 'epoch-last.pth of the official train_liif.py', convert_checkpoint)
build_parser = TOOL.build_parser
run, main = TOOL.entry_points()

if __name__ == '__main__':
    sys.exit(main())
