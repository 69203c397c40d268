"""What the converters of official checkpoints share: reading the official ``{'model': {name, args, sd}}``
layout, the check that a converted file loads, and writing it."""

import os
from collections.abc import Callable

from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.toolkit.outputs import check_output_dir, check_output_free, writing
from gaussiansr_arch.utils.checkpoint import atomic_torch_save
from gaussiansr_arch.utils.weights import check_fits, model_from_checkpoint, read_weights


def check_loadable(converted: dict, src: str = '') -> None:
    """Check, before anything is written, that the converted weights load strictly: the converted
    file goes through the one loader (:func:`~gaussiansr_arch.utils.weights.model_from_checkpoint`,
    what ``load_model`` runs once it has read a file), and so loads in every tool and in BasicSR.

    Raises:
        WeightsError: missing/unexpected keys or shape mismatches (the report of
            :mod:`gaussiansr_arch.utils.weights`, first few keys listed).
    """
    from gaussiansr_arch.archs.encoders import build_encoder

    what = f'the weights converted from {src}' if src else 'the converted weights'
    if 'network_g' in converted:
        model_from_checkpoint(converted, src or 'converted weights', what=what)
        return
    # an encoder alone (pretrained encoder weights): no arch to load it into, only the encoder
    enc = converted['encoder']
    net = build_encoder(enc['encoder'], **enc['encoder_opt'])
    check_fits(net, {k[len('encoder.') :]: v for k, v in converted['params'].items()}, what)


def split_official(ckpt, what: str = 'a LIIF checkpoint') -> tuple[str, dict, dict]:
    """Name, args and state dict of an official LIIF-repo checkpoint (``{'model': {...}}``), the
    layout LIIF-derived code (ContinuousSR's) saves too; ``what`` names it in the error.

    Raises:
        ToolError: not such a checkpoint.
    """
    model = ckpt.get('model') if isinstance(ckpt, dict) else None
    if not isinstance(model, dict) or not {'name', 'sd'} <= set(model):
        raise ToolError(f"not {what} (expected a dict with 'model': {{'name', 'args', 'sd'}})")
    return model['name'], model.get('args') or {}, model['sd']


def write_converted(src: str, dst: str, convert: Callable[[object], dict], force: bool = False) -> dict:
    """Convert the official checkpoint ``src`` with ``convert`` and write a BasicSR weights file at ``dst``.

    The output is checked before anything slow (exists without ``force``, a folder, an unwritable
    folder), the converted weights must load strictly (:func:`check_loadable`) before anything is
    written, the file records its source (name, and the official ``epoch`` when there is one), and it
    is written atomically.

    Returns:
        dict: What was written.

    Raises:
        ToolError, WeightsError: any problem (one-line message); ``dst`` is then left untouched (a
            write that fails, e.g. on a full disk, leaves no temporary file either).
    """
    check_output_free(dst, force)
    check_output_dir(os.path.dirname(dst))
    ckpt = read_weights(src, 'input checkpoint')
    converted = convert(ckpt)
    check_loadable(converted, src)
    converted['source'] = {'file': os.path.basename(src)}
    if isinstance(ckpt, dict) and isinstance(ckpt.get('epoch'), int):
        converted['source']['epoch'] = ckpt['epoch']
    with writing(dst):
        atomic_torch_save(converted, dst)
    return converted
