"""Convert an official LIIF (or LIIF-repo Meta-SR / EDSR) checkpoint to a BasicSR weights file.

    gaussiansr-convert-liif edsr-baseline-liif.pth experiments/pretrained_models/LIIF_EDSR-baseline_official.pth
    gaussiansr-convert-liif edsr-baseline-liif.pth encoder_edsr-baseline.pth --encoder-only

Full conversion writes ``{'params': state_dict, 'network_g': options, 'source': {...}}``:
``path.pretrain_network_g`` + ``strict_load_g: true`` loads it into our ``LIIF`` (or
``MetaSR``), and ``network_g`` holds the options that rebuild that arch from the file alone.

``--encoder-only`` keeps the ``encoder.*`` weights only (also accepted: a plain EDSR-PyTorch
``edsr_baseline_x*.pt``). Any arch of this package with an ``encoder`` of the same type
(GaussianSR, LIIF, MetaSR) loads it with ``pretrain_network_g`` + ``strict_load_g: false``:
BasicSR then logs the decoder keys it leaves at their initial values. The file records the
encoder options under ``encoder`` (``{'encoder': name, 'encoder_opt': {...}}``).

Files are written atomically (temporary file + ``os.replace``); an existing output is only
replaced with ``--force``. Errors are one line on stderr and exit status 2, as for every tool
(:mod:`gaussiansr_arch.tools.common`).
"""

import argparse
import sys
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.conversion import split_official, write_converted
from gaussiansr_arch.toolkit.liif_layout import convert_edsr_encoder, edsr_encoder_opt, encoder_of
from gaussiansr_arch.tools.common import Tool, ToolError
from gaussiansr_arch.utils.weights import read_weights

PROG = 'gaussiansr-convert-liif'


def _mlp_keys(sd: dict, prefix: str = 'imnet.layers.') -> 'OrderedDict[str, torch.Tensor]':
    """LIIF's ``imnet.layers.N.*`` -> our ``imnet.N.*`` (same Sequential indices)."""
    out, unexpected = OrderedDict(), []
    for key, value in sd.items():
        if key.startswith(prefix):
            out['imnet.' + key[len(prefix) :]] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise ToolError(f'unexpected key(s) {unexpected[:3]} ({len(unexpected)} in all)')
    return out


def _hidden_widths(imnet_sd: dict) -> list[int]:
    """Hidden widths of a converted MLP: out features of every Linear but the last."""
    idx = sorted({int(k.split('.')[1]) for k in imnet_sd if k.endswith('.weight')})
    return [int(imnet_sd[f'imnet.{i}.weight'].shape[0]) for i in idx[:-1]]


def convert_checkpoint(ckpt, encoder_only: bool = False) -> dict:
    """Convert a loaded checkpoint (official LIIF/MetaSR, or a plain EDSR one with ``encoder_only``).

    Returns:
        dict: ``{'params': state_dict, 'network_g': options}`` (full), or
        ``{'params': encoder.* state_dict, 'encoder': {'encoder': name, 'encoder_opt': ...}}``.

    Raises:
        ToolError: not a supported checkpoint, or keys that do not fit.
    """
    if encoder_only and isinstance(ckpt, dict) and 'head.0.weight' in ckpt:
        # a plain EDSR-PyTorch state dict (edsr_baseline_x2.pt ...): baseline res_scale
        enc_sd = convert_edsr_encoder(ckpt)
        encoder, encoder_opt = 'edsr-baseline', edsr_encoder_opt(enc_sd, 1.0)
        name, args, sd = 'edsr', {}, {}
    else:
        name, args, sd = split_official(ckpt)
        if name not in ('liif', 'metasr'):
            raise ToolError(f"model {name!r} is not supported (supported: 'liif', 'metasr')")
        encoder, encoder_opt, enc_sd = encoder_of(args, sd)
    params = OrderedDict(('encoder.' + k, v) for k, v in enc_sd.items())
    if encoder_only:
        return {'params': params, 'encoder': {'encoder': encoder, 'encoder_opt': encoder_opt}}

    imnet = _mlp_keys({k: v for k, v in sd.items() if not k.startswith('encoder.')})
    params.update(imnet)
    network_g = {
        'type': 'LIIF' if name == 'liif' else 'MetaSR',
        'encoder': encoder,
        'encoder_opt': encoder_opt,
        'hidden': _hidden_widths(imnet),
    }
    if name == 'liif':
        for flag in ('feat_unfold', 'local_ensemble', 'cell_decode'):
            network_g[flag] = bool(args.get(flag, True))  # LIIF's defaults are all True
    return {'params': params, 'network_g': network_g}


def load_checkpoint(path: str):
    """Load a checkpoint on the CPU without running pickled code (``weights_only``).

    Raises:
        WeightsError: missing, not a file, or not a readable torch checkpoint (one line naming it).
    """
    return read_weights(path, 'input checkpoint')


def convert_file(src: str, dst: str, force: bool = False, encoder_only: bool = False) -> dict:
    """Convert ``src`` to a BasicSR weights file at ``dst`` (atomic write).

    Returns:
        dict: What was written.

    Raises:
        ToolError, WeightsError: any problem (one-line message); ``dst`` is then left untouched
            (a write that fails, e.g. on a full disk, leaves no temporary file either).
    """
    return write_converted(src, dst, lambda ckpt: convert_checkpoint(ckpt, encoder_only=encoder_only), force)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-convert-liif``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Convert an official LIIF checkpoint to a BasicSR weights file '
        "({'params': ..., 'network_g': ...}) for this package's LIIF/MetaSR archs.",
    )
    parser.add_argument('src', help='official checkpoint (e.g. edsr-baseline-liif.pth)')
    parser.add_argument('dst', help='output .pth')
    parser.add_argument('--force', action='store_true', help='overwrite dst if it exists')
    parser.add_argument(
        '--encoder-only',
        action='store_true',
        help='keep only encoder.* weights (load with strict_load_g: false, e.g. into GaussianSR)',
    )
    return parser


def _run(args: argparse.Namespace) -> dict:
    converted = convert_file(args.src, args.dst, force=args.force, encoder_only=args.encoder_only)
    what = converted.get('network_g', converted.get('encoder'))
    print(f'wrote {args.dst}: {len(converted["params"])} tensors, {what}')
    return converted


run, main = Tool(build_parser, _run, PROG).entry_points()

if __name__ == '__main__':
    sys.exit(main())
