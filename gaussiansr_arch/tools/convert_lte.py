"""Convert an official LTE checkpoint to a BasicSR weights file for this package's ``LTE``.

    gaussiansr-convert-lte edsr-baseline-lte.pth experiments/pretrained_models/LTE_EDSR-baseline_official.pth

The official checkpoints (https://github.com/jaewon-lee-b/lte) have LIIF's layout, ``{'model':
{'name': 'lte', 'args': {'encoder_spec', 'imnet_spec', 'hidden_dim'}, 'sd': state_dict}}``. The
output is ``{'params', 'network_g', 'source'}``: ``path.pretrain_network_g`` + ``strict_load_g:
true`` loads it, and ``gaussiansr_arch.load_model`` rebuilds the arch from it alone (``network_g``).

Keys: the encoder as ``gaussiansr-convert-liif`` converts it (``toolkit/liif_layout.py``: EDSR /
EDSR-baseline; the mean shifts and upsampler, unused, are dropped); the estimator ``coef.``,
``freq.``, ``phase.`` -> ``estimator.coef.`` ...; the MLP ``imnet.layers.N`` -> ``estimator.mlp.N``.
Widths are read from the shapes. The official RDN and SwinIR encoders (RDN-LTE, SwinIR-LTE) and
the ``lte-fast`` model are refused with a one-line error.

Errors are one line on stderr and exit status 2, as for every tool; the output is written
atomically and an existing one is only replaced with ``--force``.
"""

import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.conversion import split_official
from gaussiansr_arch.toolkit.liif_layout import encoder_of, renamed_head
from gaussiansr_arch.tools.common import ToolError, converter_tool

PROG = 'gaussiansr-convert-lte'
OFFICIAL_NAME = 'lte'
# Official prefixes (outside the encoder) -> ours.
PREFIXES = {
    'coef.': 'estimator.coef.',
    'freq.': 'estimator.freq.',
    'phase.': 'estimator.phase.',
    'imnet.layers.': 'estimator.mlp.',
}


def _renamed(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The non-encoder keys under our names.

    Raises:
        ToolError: keys under none of :data:`PREFIXES` (listed).
    """
    out = renamed_head(sd, PREFIXES)
    if 'estimator.coef.weight' not in out:
        raise ToolError('no coef.weight: not an LTE state dict')
    return out


def _hidden_widths(params: dict) -> list[int]:
    """Hidden widths of the converted MLP: out features of every Linear but the last."""
    idx = sorted({int(k.split('.')[2]) for k in params if k.startswith('estimator.mlp.') and k.endswith('.weight')})
    return [int(params[f'estimator.mlp.{i}.weight'].shape[0]) for i in idx[:-1]]


def convert_checkpoint(ckpt) -> dict:
    """Convert a loaded official LTE checkpoint.

    Returns:
        dict: ``{'params': state_dict, 'network_g': options}``.

    Raises:
        ToolError: not an official LTE checkpoint, or keys that do not fit.
    """
    name, args, sd = split_official(ckpt, 'an official LTE checkpoint')
    if name != OFFICIAL_NAME:
        raise ToolError(f'model {name!r} is not supported (supported: {OFFICIAL_NAME!r})')
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ToolError("the checkpoint's 'sd' is not a dict of tensors")
    encoder, encoder_opt, enc_sd = encoder_of(args, sd)
    params = OrderedDict(('encoder.' + k, v) for k, v in enc_sd.items())
    params.update(_renamed(sd))
    network_g = {
        'type': 'LTE',
        'encoder': encoder,
        'encoder_opt': encoder_opt,
        'hidden_dim': int(params['estimator.coef.weight'].shape[0]),
        'hidden': _hidden_widths(params),
    }
    return {'params': params, 'network_g': network_g}


TOOL = converter_tool(PROG, 'LTE', 'LTE', 'edsr-baseline-lte.pth', convert_checkpoint)
build_parser = TOOL.build_parser
run, main = TOOL.entry_points()

if __name__ == '__main__':
    sys.exit(main())
