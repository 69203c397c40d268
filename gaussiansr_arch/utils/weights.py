"""One path for weight files: read, pick the parameters, build the arch, load with one mismatch report.

Used by the command-line tools (``tools.common.load_model``, the LIIF converter), and by the
training/test entries through :func:`gaussiansr_arch.utils.entry_errors.check_network_file`.
Every problem is a :class:`WeightsError` whose message is one line naming the file:

* :func:`read_weights`: ``torch.load(weights_only=True)`` on the CPU (no pickled code runs); a
  missing, truncated or foreign file, or one that needs pickle, is named with the reason;
* :func:`pick_state_dict`: the parameters of any layout this package and BasicSR produce
  (``params_ema`` / ``params`` / a bare state dict, or the ``param_key`` asked for), with the
  ``module.`` prefix of DataParallel stripped as BasicSR does;
* :func:`recorded_network_opt`: the ``network_g`` a self-describing file records (converted LIIF);
* :func:`build_arch`: the arch of a ``network_g`` mapping through BasicSR's ``build_network``;
* :func:`check_fits` / :func:`load_into`: the one mismatch report
  (``missing keys N (a, b, c, ...); unexpected keys N (...); shape mismatch N (k (3, 3) vs (4, 3))``).
"""

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from gaussiansr_arch.utils.checkpoint import load_checkpoint_cpu

__all__ = ['WeightsError', 'WeightsNeedPickleError', 'read_weights', 'is_state_dict', 'as_state_dict',
           'pick_state_dict', 'recorded_network_opt', 'build_arch', 'short_keys', 'mismatch', 'check_fits',
           'load_into']

# Keys tried, in order, when no param_key is asked for (BasicSR saves both, params_ema is the better one).
DEFAULT_PARAM_KEYS = ('params_ema', 'params')
# Keys listed per kind of mismatch before '...'.
SHOWN_KEYS = 5


class WeightsError(ValueError):
    """A weights file that cannot be used for what it is meant for; the message is one line naming it."""


class WeightsNeedPickleError(WeightsError):
    """A file ``torch.load(weights_only=True)`` refuses: it holds pickled objects beyond tensors and containers."""


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = ' '.join(str(err).split())
    return text[:limit] if text else type(err).__name__


def _load_failure(err: BaseException) -> tuple[bool, str]:
    """(needs pickle?, the gist) of a ``torch.load(weights_only=True)`` failure.

    torch wraps what its restricted unpickler found in paragraphs of advice; keep what it found:
    ``Unsupported global: GLOBAL x.Y ...`` (an object only pickle can rebuild) or e.g.
    ``Unsupported operand 110`` (not a checkpoint at all).
    """
    text = ' '.join(str(err).split())
    found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
    if found:
        return True, f'{found.group(1)} is not allowed with weights_only=True'
    found = re.search(r'WeightsUnpickler error: (.*?)(?: Check the documentation|$)', text)
    if found and found.group(1).strip():
        text = found.group(1).strip()
    return False, text[:200] if text else type(err).__name__


def read_weights(path: str, what: str = 'weights file') -> Any:
    """Load a weights file on the CPU without running pickled code (``weights_only=True``).

    Args:
        path (str): The file.
        what (str): What to call it in messages (``'weights file'``, ``'network file'`` ...).

    Raises:
        WeightsError: missing, not a file, empty, truncated or not a PyTorch checkpoint.
        WeightsNeedPickleError: a checkpoint holding objects that only pickle can rebuild.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f'{what} {path} does not exist')
    if not os.path.isfile(path):
        raise WeightsError(f'{what} {path} is not a file')
    try:
        return load_checkpoint_cpu(path)
    except Exception as err:  # truncated zip, foreign pickle, not a torch file ...
        needs_pickle, reason = _load_failure(err)
        if needs_pickle:
            raise WeightsNeedPickleError(f'{what} {path} needs pickle to load: {reason}') from None
        if os.path.getsize(path) == 0:
            reason = 'file is empty (0 bytes)'
        raise WeightsError(f'{what} {path} cannot be loaded (truncated or not a PyTorch checkpoint): '
                           f'{reason}') from None


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty mapping of names to tensors."""
    return isinstance(obj, Mapping) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def as_state_dict(obj: Any, path: str, what: str = 'weights file') -> dict[str, torch.Tensor]:
    """``obj`` as a state dict without BasicSR's ``module.`` (DataParallel) prefix; WeightsError if it is not one.

    An empty mapping passes (what it misses is reported when it is loaded).
    """
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(f'{what} {path}: the parameters are not a dict of tensors')
    return {k.removeprefix('module.'): v for k, v in obj.items()}


def pick_state_dict(ckpt: Any, path: str, param_key: str | None = None,
                    what: str = 'weights file') -> dict[str, torch.Tensor]:
    """The parameters of a loaded weights file, whatever layout this package or BasicSR wrote.

    Args:
        ckpt: What :func:`read_weights` returned.
        path (str): The file (for messages).
        param_key (str | None): The key asked for; None: ``params_ema`` if present, else
            ``params``, else ``ckpt`` itself when it is a bare state dict.
        what (str): What to call the file in messages.

    Raises:
        WeightsError: the key asked for is absent, no known layout, or not a dict of tensors.
    """
    if param_key is not None:
        if not isinstance(ckpt, Mapping) or param_key not in ckpt:
            keys = sorted(map(str, ckpt))[:5] if isinstance(ckpt, Mapping) else []
            raise WeightsError(f'{what} {path} has no {param_key!r} entry (entries: {keys})')
        return as_state_dict(ckpt[param_key], path, what)
    if isinstance(ckpt, Mapping):
        for key in DEFAULT_PARAM_KEYS:
            if key in ckpt:
                return as_state_dict(ckpt[key], path, what)
    if is_state_dict(ckpt):
        return as_state_dict(ckpt, path, what)
    raise WeightsError(f'{what} {path}: no params_ema/params entry and not a state dict')


def recorded_network_opt(ckpt: Any) -> dict | None:
    """The ``network_g`` options a self-describing weights file records, or None."""
    opt = ckpt.get('network_g') if isinstance(ckpt, Mapping) else None
    return dict(opt) if isinstance(opt, Mapping) else None


@contextlib.contextmanager
def _quiet_basicsr_logger() -> Iterator[None]:
    """Silence the 'Network [X] is created.' line of ``build_network`` and keep BasicSR's logger as it was.

    ``build_network`` logs through ``get_root_logger()``, which on first use attaches a stderr
    handler to the 'basicsr' logger for good: a tool would then print BasicSR log lines, and a
    training run later in the same process would not get its log file.
    """
    from basicsr.utils import logger as basicsr_logger

    logger = logging.getLogger('basicsr')
    fresh = 'basicsr' not in basicsr_logger.initialized_logger
    if fresh:
        basicsr_logger.initialized_logger['basicsr'] = True
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled
        if fresh:
            basicsr_logger.initialized_logger.pop('basicsr', None)


def build_arch(network_opt: Any, source: str) -> torch.nn.Module:
    """Build the arch of a BasicSR ``network_g`` mapping with ``basicsr.archs.build_network``.

    Args:
        network_opt (dict): ``{'type': <registered arch>, **options}``.
        source (str): Where the mapping comes from (``'options file x.yml'``), for messages.

    Raises:
        WeightsError: no ``type``, an unregistered type, or options the arch rejects.
    """
    from basicsr.archs import build_network

    if not isinstance(network_opt, Mapping) or 'type' not in network_opt:
        raise WeightsError(f'{source}: network_g must be a mapping with a "type" key')
    arch_type = network_opt['type']
    try:
        with _quiet_basicsr_logger():
            return build_network(dict(network_opt))
    except KeyError as err:
        if 'registry' in str(err):
            raise WeightsError(f'{source}: network_g type {arch_type!r} is not a registered arch') from None
        raise WeightsError(f'{source}: cannot build {arch_type} from network_g (missing option {err})') from None
    except (TypeError, ValueError) as err:
        raise WeightsError(f'{source}: cannot build {arch_type} from network_g ({_first_line(err, 300)})') from None


def short_keys(keys: list[str], limit: int = SHOWN_KEYS) -> str:
    """``'5 (a, b, c, ...)'``: how many, and the first ``limit``."""
    more = ', ...' if len(keys) > limit else ''
    return f'{len(keys)} ({", ".join(keys[:limit])}{more})'


def mismatch(net: torch.nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> list[str]:
    """What keeps ``state`` from loading into ``net``: missing / unexpected keys (``strict``) and shape mismatches.

    ``load_state_dict`` rejects a shape mismatch even with ``strict=False``, so shapes are always checked.
    """
    own = net.state_dict()
    problems = []
    if strict:
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing:
            problems.append(f'missing keys {short_keys(missing)}')
        if unexpected:
            problems.append(f'unexpected keys {short_keys(unexpected)}')
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if shapes:
        problems.append(f'shape mismatch {short_keys(shapes)}')
    return problems


def check_fits(net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | None = None,
               strict: bool = True) -> None:
    """Raise WeightsError unless ``state`` loads into ``net``.

    Args:
        what (str): The weights, e.g. ``'network file x.pth'``.
        source (str | None): Where the arch options come from, e.g. ``'the options'``.

    Raises:
        WeightsError: ``<what> does not fit <Arch> of <source> (another arch or config?): missing keys
            N (...); unexpected keys N (...); shape mismatch N (...)``.
    """
    problems = mismatch(net, state, strict)
    if problems:
        of = f' of {source}' if source else ''
        raise WeightsError(f'{what} does not fit {type(net).__name__}{of} (another arch or config?): '
                           f'{"; ".join(problems)}')


def load_into(net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | None = None,
              strict: bool = True) -> torch.nn.Module:
    """:func:`check_fits`, then ``net.load_state_dict(state, strict)``; returns ``net``."""
    check_fits(net, state, what, source, strict)
    net.load_state_dict(state, strict=strict)
    return net
