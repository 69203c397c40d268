"""One path for weight files: read, pick the parameters, build the arch, load with one mismatch report.

Used by the command-line tools and the converters, by :func:`load_model` (``gaussiansr_arch.load_model``:
the one loader of the tools, benchmarks and demo), and by the training/test entries through
:func:`gaussiansr_arch.utils.entry_errors.check_network_file` and ``ArbitraryScaleSRModel.load_network``.
Every problem is a :class:`WeightsError` whose message is one line naming the file:

* :func:`read_weights`: ``.pth`` through ``torch.load(weights_only=True)`` on the CPU (no pickled
  code runs), ``.safetensors`` through ``safetensors`` (no pickle at all; its string metadata gives
  the same layout as a ``.pth``, see :func:`save_weights`); a missing, truncated or foreign file,
  or one that needs pickle, is named with the reason;
* :func:`pick_state_dict`: the parameters of any layout this package and BasicSR produce
  (``params_ema`` / ``params`` / a bare state dict, or the ``param_key`` asked for), with the
  ``module.`` prefix of DataParallel stripped as BasicSR does;
* :func:`recorded_network_opt`: the ``network_g`` a self-describing file records (converted LIIF);
* :func:`build_arch`: the arch of a ``network_g`` mapping through BasicSR's ``build_network``;
* :func:`check_fits` / :func:`load_into`: the one mismatch report
  (``missing keys N (a, b, c, ...); unexpected keys N (...); shape mismatch N (k (3, 3) vs (4, 3))``);
* :func:`save_weights`: the one writer of deployable weights (``.pth`` or ``.safetensors``, atomic);
* :func:`load_model`: a ready arch from any such file, from its ``network_g`` or, failing that,
  from its parameter shapes (:mod:`gaussiansr_arch.utils.arch_detect`).
"""

import contextlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from gaussiansr_arch._version import __version__
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.atomic import atomic_path
from gaussiansr_arch.utils.checkpoint import atomic_torch_save, load_checkpoint_cpu
from gaussiansr_arch.utils.weights_error import WeightsError

__all__ = [
    'WeightsError',
    'WeightsNeedPickleError',
    'read_weights',
    'is_safetensors',
    'is_state_dict',
    'as_state_dict',
    'pick_state_dict',
    'network_param_key',
    'recorded_network_opt',
    'build_arch',
    'short_keys',
    'mismatch',
    'check_fits',
    'load_into',
    'plain_tensors',
    'save_weights',
    'load_model',
    'model_from_checkpoint',
]

# Keys tried, in order, when no param_key is asked for (BasicSR saves both, params_ema is the better one).
DEFAULT_PARAM_KEYS = ('params_ema', 'params')
SAFETENSORS_SUFFIX = '.safetensors'
TORCH_SUFFIXES = ('.pth', '.pt')
# What a weights file records besides its parameters: under these keys in a .pth, as string
# metadata in a .safetensors (network_g as JSON), with the parameters' key as META_PARAM_KEY.
NETWORK_KEY = 'network_g'
VERSION_KEY = 'gaussiansr_arch_version'
META_PARAM_KEY = 'param_key'
# Keys listed per kind of mismatch before '...'.
SHOWN_KEYS = 5


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


def is_safetensors(path: str) -> bool:
    """True for a ``.safetensors`` file name (the format is told by the name, as every SR tool does)."""
    return os.fspath(path).lower().endswith(SAFETENSORS_SUFFIX)


def _from_safetensors(
    tensors: 'OrderedDict[str, torch.Tensor]', metadata: Mapping[str, str], path: str, what: str
) -> Any:
    """What ``torch.load`` gives for the same weights saved as ``.pth`` by :func:`save_weights`.

    ``{param_key: tensors, 'network_g': {...}, 'gaussiansr_arch_version': '...'}`` when the metadata
    records any of those; else the bare state dict (a ``.safetensors`` written by other software).
    """
    if not any(k in metadata for k in (META_PARAM_KEY, NETWORK_KEY, VERSION_KEY)):
        return tensors
    param_key = metadata.get(META_PARAM_KEY) or 'params'
    if param_key in (NETWORK_KEY, VERSION_KEY):
        raise WeightsError(f"{what} {path}: its metadata names {param_key!r} as the parameters' key")
    ckpt: dict[str, Any] = {param_key: tensors}
    if NETWORK_KEY in metadata:
        try:
            network_opt = json.loads(metadata[NETWORK_KEY])
        except ValueError as err:
            raise WeightsError(f'{what} {path}: its network_g metadata is not JSON ({_first_line(err)})') from None
        if not isinstance(network_opt, dict):
            raise WeightsError(f'{what} {path}: its network_g metadata is not a JSON object')
        ckpt[NETWORK_KEY] = network_opt
    if VERSION_KEY in metadata:
        ckpt[VERSION_KEY] = metadata[VERSION_KEY]
    return ckpt


def _read_safetensors(path: str, what: str) -> Any:
    """Tensors (CPU) and metadata of a ``.safetensors`` file, in the ``.pth`` layout (:func:`_from_safetensors`)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            metadata = f.metadata() or {}
            names = f.keys()  # a safe_open is not iterable
            tensors = OrderedDict((key, f.get_tensor(key)) for key in names)
    except Exception as err:  # SafetensorError: truncated, empty, not safetensors ...
        reason = 'file is empty (0 bytes)' if os.path.getsize(path) == 0 else _first_line(err)
        raise WeightsError(f'{what} {path} cannot be loaded (truncated or not a safetensors file): {reason}') from None
    return _from_safetensors(tensors, metadata, path, what)


def read_weights(path: str, what: str = 'weights file') -> Any:
    """Load a weights file on the CPU without running pickled code.

    ``.safetensors``: the tensors through ``safetensors`` and, when the file records them (as
    :func:`save_weights` does), ``{param_key: tensors, 'network_g': ..., 'gaussiansr_arch_version': ...}``
    rebuilt from its metadata, so that :func:`pick_state_dict` and :func:`recorded_network_opt`
    read it as they read the ``.pth`` of the same weights. Anything else: ``torch.load(weights_only=True)``.

    Args:
        path (str): The file.
        what (str): What to call it in messages (``'weights file'``, ``'network file'`` ...).

    Raises:
        WeightsError: missing, not a file, empty, truncated or not a PyTorch / safetensors file.
        WeightsNeedPickleError: a checkpoint holding objects that only pickle can rebuild.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f'{what} {path} does not exist')
    if not os.path.isfile(path):
        raise WeightsError(f'{what} {path} is not a file')
    if is_safetensors(path):
        return _read_safetensors(path, what)
    try:
        return load_checkpoint_cpu(path)
    except Exception as err:  # truncated zip, foreign pickle, not a torch file ...
        needs_pickle, reason = _load_failure(err)
        if needs_pickle:
            raise WeightsNeedPickleError(f'{what} {path} needs pickle to load: {reason}') from None
        if os.path.getsize(path) == 0:
            reason = 'file is empty (0 bytes)'
        raise WeightsError(
            f'{what} {path} cannot be loaded (truncated or not a PyTorch checkpoint): {reason}'
        ) from None


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


def picked_key(ckpt, param_key: str | None) -> str:
    """The key the parameters are recorded under in the output (what ``pick_state_dict`` took)."""
    if param_key is not None:
        return param_key
    if isinstance(ckpt, dict) and not is_state_dict(ckpt):
        for key in DEFAULT_PARAM_KEYS:
            if key in ckpt:
                return key
    return 'params'


def pick_state_dict(
    ckpt: Any, path: str, param_key: str | None = None, what: str = 'weights file'
) -> dict[str, torch.Tensor]:
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


def network_param_key(ckpt: Any, path: str, param_key: str | None) -> str | None:
    """The key BasicSR's ``load_network`` reads for ``param_key`` (None: the whole file).

    A ``.pth``: ``param_key``, or ``params`` when it is absent and ``params`` is there (BasicSR's
    fallback for a file without ``params_ema``). A ``.safetensors`` holds one set of parameters:
    that set, whatever key was asked for (None for a bare state dict).
    """
    if is_safetensors(path):
        if not isinstance(ckpt, Mapping) or is_state_dict(ckpt):
            return None
        held = [k for k in ckpt if k not in (NETWORK_KEY, VERSION_KEY)]
        return held[0] if held else param_key
    if param_key is not None and isinstance(ckpt, Mapping) and param_key not in ckpt and 'params' in ckpt:
        return 'params'
    return param_key


def read_network_state(path: str, param_key: str | None, what: str = 'network file') -> tuple[dict, str | None]:
    """The state dict BasicSR's ``load_network`` would load from ``path`` for ``param_key``, and that key.

    Raises:
        WeightsError: one line naming the file (missing, truncated, foreign, no such key).
    """
    ckpt = read_weights(path, what)
    param_key = network_param_key(ckpt, path, param_key)
    if param_key is None:
        return as_state_dict(ckpt, path, what), None
    return pick_state_dict(ckpt, path, param_key, what), param_key


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
    shapes = [
        f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes:
        problems.append(f'shape mismatch {short_keys(shapes)}')
    return problems


def check_fits(
    net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | None = None, strict: bool = True
) -> None:
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
        raise WeightsError(
            f'{what} does not fit {type(net).__name__}{of} (another arch or config?): {"; ".join(problems)}'
        )


def load_into(
    net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | None = None, strict: bool = True
) -> torch.nn.Module:
    """:func:`check_fits`, then ``net.load_state_dict(state, strict)``; returns ``net``."""
    check_fits(net, state, what, source, strict)
    net.load_state_dict(state, strict=strict)
    return net


# ---------------------------------------------------------------------------- writing
def plain_tensors(state_dict: Mapping[str, torch.Tensor], path: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """Detached, contiguous CPU tensors, each owning its whole storage.

    ``safetensors`` refuses non-contiguous and storage-sharing tensors, and ``torch.save`` of a
    view writes its whole base storage: a tensor that shares its storage with an earlier one (tied
    weights), or is a view into a larger one, is cloned. Parameters of a module are neither (no copy).

    Raises:
        WeightsError: a value that is not a tensor.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            raise WeightsError(f'weights file {path}: {key} is a {type(value).__name__}, not a tensor')
        tensor = value.detach().cpu().contiguous()
        if tensor.numel():
            storage = tensor.untyped_storage()
            partial = tensor.storage_offset() or tensor.numel() * tensor.element_size() != storage.nbytes()
            if storage.data_ptr() in seen or partial:
                tensor = tensor.clone()
            seen.add(tensor.untyped_storage().data_ptr())
        out[str(key)] = tensor
    return out


def _json_network_opt(network_opt: Any, path: str) -> dict:
    """``network_opt`` as plain JSON types (what both formats record; tuples become lists)."""
    if not isinstance(network_opt, Mapping) or 'type' not in network_opt:
        raise WeightsError(f'weights file {path}: network_g must be a mapping with a "type" key')
    try:
        return json.loads(json.dumps(network_opt))
    except (TypeError, ValueError) as err:
        raise WeightsError(f'weights file {path}: network_g cannot be recorded as JSON ({_first_line(err)})') from None


def save_weights(
    path: str, state_dict: Mapping[str, torch.Tensor], network_g: Mapping | None = None, param_key: str = 'params'
) -> None:
    """Write deployable weights atomically, as ``.pth`` or ``.safetensors`` (told by the name).

    * ``.pth`` / ``.pt``: ``{param_key: state_dict, 'network_g': {...}, 'gaussiansr_arch_version': '...'}``
      (``torch.save``; loads with ``torch.load(weights_only=True)`` and BasicSR's ``load_network``);
    * ``.safetensors``: the tensors, and string metadata ``param_key``, ``network_g`` (JSON) and
      ``gaussiansr_arch_version`` (plus ``format: pt``), which :func:`read_weights` turns back into
      the ``.pth`` layout.

    ``network_g`` (the arch options, e.g. the YAML's) is left out when None; the file can then be
    loaded with options from elsewhere, or by :func:`load_model` from its shapes. The tensors are
    written as :func:`plain_tensors` makes them. The file appears complete or not at all
    (temporary file + ``os.replace``; an existing file keeps its content when writing fails).

    Raises:
        WeightsError: an unknown extension, a bad ``param_key``, a ``network_g`` that is not a
            JSON-able mapping with a ``type``, or values that are not tensors.
        OSError: the write failed (the temporary file is removed).
    """
    path = os.fspath(path)
    safetensors_file = is_safetensors(path)
    if not safetensors_file and not path.lower().endswith(TORCH_SUFFIXES):
        raise WeightsError(f'weights file {path}: unknown format; name it .safetensors or .pth')
    if not isinstance(param_key, str) or not param_key or param_key in (NETWORK_KEY, VERSION_KEY):
        raise WeightsError(
            f'weights file {path}: param_key must be a name like params or params_ema, got {param_key!r}'
        )
    tensors = plain_tensors(state_dict, path)
    network_opt = _json_network_opt(network_g, path) if network_g is not None else None
    if safetensors_file:
        from safetensors.torch import save_file

        metadata = {'format': 'pt', META_PARAM_KEY: param_key, VERSION_KEY: __version__}
        if network_opt is not None:
            metadata[NETWORK_KEY] = json.dumps(network_opt)
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
    else:
        obj: dict[str, Any] = {param_key: tensors}
        if network_opt is not None:
            obj[NETWORK_KEY] = network_opt
        obj[VERSION_KEY] = __version__
        atomic_torch_save(obj, path)


# ---------------------------------------------------------------------------- one-call loading
def load_model(
    path: str,
    device: str | torch.device = 'cpu',
    *,
    param_key: str | None = None,
    network_g: Mapping | None = None,
    source: str | None = None,
) -> torch.nn.Module:
    """A ready arch (eval mode, on ``device``, gradients off) from a weights file, in one call.

    Any file this package writes or converts: GaussianSR, LIIF or MetaSR; ``.pth`` or ``.safetensors``;
    a training checkpoint ``net_g_<iter>.pth``, a ``gaussiansr-convert-weights`` or
    ``gaussiansr-convert-liif`` output, or a bare state dict. The arch options are, in order:
    ``network_g`` when given (e.g. the ``network_g`` of the run's YAML); the ``network_g`` the file
    records; else detected from the parameter names and shapes
    (:func:`gaussiansr_arch.utils.arch_detect.detect_network_opt`, which spells out what shapes
    cannot show and is then assumed: GaussianSR's ``image_skip`` 'none', ``splat_channels`` 8 when
    it has a splatting module, LIIF's ``local_ensemble`` on ...). The parameters: ``param_key``
    when given, else ``params_ema``, else ``params``, else the bare state dict. Loading is strict.

    Example::

        import gaussiansr_arch
        model = gaussiansr_arch.load_model('gaussiansr_edsr.safetensors', device='cuda')
        sr = model.upscale(lr, size=(1080, 1920))  # lr: [1,3,h,w] RGB in [0,1] on that device

    Args:
        path (str): The weights file.
        device (str | torch.device): Where the arch goes. Default: 'cpu'.
        param_key (str | None): Key of the parameters in the file (default: see above).
        network_g (Mapping | None): Arch options overriding what the file records or shows.
        source (str | None): Where ``network_g`` comes from, for messages (the tools: ``'options
            file run.yml'``). Default: 'the network_g given'.

    Returns:
        nn.Module: The arch (an ``ArbitraryScaleArch``: ``upscale(lr, size=... | scale=...)``), its
            ``network_g`` attribute the options it was built from (given, recorded or detected).
            Call ``.requires_grad_(True).train()`` on it to fine-tune.

    Raises:
        WeightsError: one line naming the file: unreadable, needs pickle, no such key, an unknown
            layout, or parameters that do not fit the arch (the one mismatch report).
    """
    path = os.fspath(path)
    arch = model_from_checkpoint(read_weights(path), path, param_key=param_key, network_g=network_g, source=source)
    arch.eval().to(device)
    arch.requires_grad_(False)
    return arch


def model_from_checkpoint(
    ckpt: Any,
    path: str,
    *,
    param_key: str | None = None,
    network_g: Mapping | None = None,
    source: str | None = None,
    what: str | None = None,
) -> torch.nn.Module:
    """What :func:`load_model` does once the file is read: the arch with its parameters loaded strictly.

    The converters call it on a checkpoint still in memory, so a converted file is checked by the
    same loader that will read it, before anything is written.

    Args:
        ckpt: A checkpoint as :func:`read_weights` returns it.
        path (str): Its file (or what it is), for messages.
        param_key, network_g, source: as for :func:`load_model`.
        what (str | None): What to call the weights in messages. Default: ``'weights file <path>'``.

    Returns:
        nn.Module: The arch (train mode, on the CPU), its ``network_g`` attribute set.
    """
    what = what or f'weights file {path}'
    state = pick_state_dict(ckpt, path, param_key)
    if network_g is not None:
        network_opt = dict(network_g)
        arch = build_arch(network_opt, source or f'{what}: the network_g given')
        source = source or 'the network_g given'
    elif (network_opt := recorded_network_opt(ckpt)) is not None:
        source = 'the network_g it records'
        arch = build_arch(network_opt, what)
    else:
        network_opt, source = detect_network_opt(state, path), 'the network_g detected from its shapes'
        arch = build_arch(network_opt, f'{what} ({source})')
    load_into(arch, state, what, source)
    arch.network_g = network_opt
    return arch
