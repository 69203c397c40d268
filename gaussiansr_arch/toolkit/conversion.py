"""What the converters of official checkpoints share: reading the official ``{'model': {name, args, sd}}``
layout and the check that a converted file loads."""

from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.utils.weights import build_arch, check_fits


def check_loadable(converted: dict, src: str = '') -> None:
    """Build the target arch and check that the parameters load strictly: the file will load in BasicSR.

    Raises:
        WeightsError: missing/unexpected keys or shape mismatches (the report of
            :mod:`gaussiansr_arch.utils.weights`, first few keys listed).
    """
    from gaussiansr_arch.archs.encoders import build_encoder

    what = f'the weights converted from {src}' if src else 'the converted weights'
    if 'network_g' in converted:
        net, sd = build_arch(converted['network_g'], what), converted['params']
    else:
        enc = converted['encoder']
        net = build_encoder(enc['encoder'], **enc['encoder_opt'])
        sd = {k[len('encoder.') :]: v for k, v in converted['params'].items()}
    check_fits(net, sd, what)


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
