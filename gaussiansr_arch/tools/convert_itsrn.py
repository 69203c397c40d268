"""Convert an official ITSRN checkpoint to a BasicSR weights file for this package's ``ITSRN``.

    gaussiansr-convert-itsrn ITSRN_last.pth experiments/pretrained_models/ITSRN_RDN_official.pth

The official checkpoints (https://github.com/codyshen0000/ITSRN, ``train.py``) have LIIF's layout,
``{'model': {'name': 'ITNSR', 'args': {'encoder_spec', 'imnet_spec', 'feat_unfold',
'local_ensemble', 'scale_token'}, 'sd': state_dict}}``. The output is ``{'params', 'network_g',
'source'}``: ``path.pretrain_network_g`` + ``strict_load_g: true`` loads it, and
``gaussiansr_arch.load_model`` rebuilds the arch from it alone (``network_g``).

Keys: the encoder through ``toolkit/liif_layout.py``: the official code's RDN (``no_upsampling``)
-> ``RDNEncoder`` (options from the shapes), or an EDSR / EDSR-baseline of LIIF's layout as
``gaussiansr-convert-liif`` converts it; the kernel MLP ``imnet.layers.N`` -> ``kernel_mlp.N``,
``Score.layers.N`` -> ``score_mlp.N``, ``Weight.layers.N`` -> ``ensemble_mlp.N``. Widths are read
from the shapes. Models without the official defaults (``feat_unfold``, ``local_ensemble`` or
``scale_token`` off, a coordinate embedding) are refused with a one-line error.

Errors are one line on stderr and exit status 2, as for every tool; the output is written
atomically and an existing one is only replaced with ``--force``.
"""

import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.conversion import split_official
from gaussiansr_arch.toolkit.liif_layout import encoder_of, renamed_head
from gaussiansr_arch.tools.common import ToolError, converter_tool
from gaussiansr_arch.utils.arch_detect import mlp_shape

PROG = 'gaussiansr-convert-itsrn'
OFFICIAL_NAME = 'ITNSR'  # the official registry's name (sic)
# Official prefixes (outside the encoder) -> ours.
PREFIXES = {
    'imnet.layers.': 'kernel_mlp.',
    'Score.layers.': 'score_mlp.',
    'Weight.layers.': 'ensemble_mlp.',
}
# The official options this arch implements, with the official defaults.
REQUIRED_FLAGS = ('feat_unfold', 'local_ensemble', 'scale_token')


def _check_options(args: dict) -> None:
    """Refuse the official options ``ITSRN`` does not implement (one line)."""
    off = [flag for flag in REQUIRED_FLAGS if not args.get(flag, True)]
    if off:
        raise ToolError(f'{", ".join(off)} off is not supported (only the official defaults, all three on)')
    if args.get('embedding_coord') is not None:
        raise ToolError('embedding_coord is not supported (the official default, none, only)')
    if args.get('imnet_spec') is None:
        raise ToolError('no imnet_spec: a model without the implicit transformer is not supported')


def _renamed(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The non-encoder keys under our names.

    Raises:
        ToolError: keys under none of :data:`PREFIXES` (listed), or no kernel MLP.
    """
    out = renamed_head(sd, PREFIXES)
    for ours, official in (('kernel_mlp', 'imnet'), ('score_mlp', 'Score'), ('ensemble_mlp', 'Weight')):
        if mlp_shape(out, f'{ours}.') is None:
            raise ToolError(f'no {official}.layers.* MLP: not an ITSRN state dict')
    return out


def convert_checkpoint(ckpt) -> dict:
    """Convert a loaded official ITSRN checkpoint.

    Returns:
        dict: ``{'params': state_dict, 'network_g': options}``.

    Raises:
        ToolError: not an official ITSRN checkpoint, options it does not implement, or keys that do not fit.
    """
    name, args, sd = split_official(ckpt, 'an official ITSRN checkpoint')
    if name != OFFICIAL_NAME:
        raise ToolError(f'model {name!r} is not supported (supported: {OFFICIAL_NAME!r})')
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ToolError("the checkpoint's 'sd' is not a dict of tensors")
    _check_options(args)
    encoder, encoder_opt, enc_sd = encoder_of(args, sd, rdn=True)
    params = OrderedDict(('encoder.' + k, v) for k, v in enc_sd.items())
    params.update(_renamed(sd))
    network_g = {
        'type': 'ITSRN',
        'encoder': encoder,
        'encoder_opt': encoder_opt,
        'hidden': mlp_shape(params, 'kernel_mlp.')[1],
        'score_hidden': mlp_shape(params, 'score_mlp.')[1],
        'ensemble_hidden': mlp_shape(params, 'ensemble_mlp.')[1],
    }
    return {'params': params, 'network_g': network_g}


TOOL = converter_tool(PROG, 'ITSRN', 'ITSRN', 'ITSRN_last.pth', convert_checkpoint)
build_parser = TOOL.build_parser
run, main = TOOL.entry_points()

if __name__ == '__main__':
    sys.exit(main())
