"""One-line messages for ``gaussiansr-train`` / ``gaussiansr-test`` (what BasicSR reports as a traceback).

Nothing here changes BasicSR: the entries run its pipelines as they are, and
:func:`entry_error_message` turns the exception that ends one into one line:

* an option or file error (``ValueError``, ``TypeError``, ``KeyError``, ``OSError``) raised while
  one of BasicSR's builders runs (``build_dataset``, ``build_model``, ``build_network``) is prefixed
  with what that builder was building, read from the builder's frame in the traceback
  (``dataset 'tiny' (ArbitraryScaleImageDataset): ...``, ``model_type 'X': missing option 'network_g'``,
  ``network 'GaussianSR': ...``); the innermost builder names it;
* BasicSR's ``No object named 'X' found in 'Y' registry!`` names the YAML section and the registered types;
* errors whose message already says everything (:class:`EntryError` and the ``user_errors`` given) as they are;
* anything else is a bug: None, and the entry shows the traceback.

:func:`check_network_file` gives weight files the tools' one mismatch report
(used by ``ArbitraryScaleSRModel.load_network``).
"""

import os
import re
from types import TracebackType

import torch


class EntryError(RuntimeError):
    """A user error (options, data, weight or state files) whose message is one line saying all."""


class CheckpointError(EntryError):
    """A network file that cannot be loaded into the network it is meant for."""


# Exceptions BasicSR's builders raise for bad options or files (anything else is a bug: traceback).
SETUP_ERRORS = (ValueError, TypeError, KeyError, OSError)

# Registry name -> where its ``type`` comes from in the YAML.
_REGISTRY_SECTIONS = {
    'arch': 'network_g',
    'dataset': 'datasets',
    'model': 'model_type',
    'loss': 'train',
    'metric': 'val.metrics',
}


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line.

    A DataLoader worker re-raises an exception with the worker's whole traceback as its message;
    its last line (``module.Error: message``) is the original message.
    """
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args and type(err) is KeyError else str(err)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and 'Traceback' in text:
        lines = [re.sub(r'^[\w.]+(Error|Exception|Interrupt): ', '', lines[-1])]
    return ' '.join(lines) or type(err).__name__


def unknown_type_message(err: KeyError) -> str | None:
    """One line for BasicSR's "No object named 'X' found in 'Y' registry!", else None."""
    from basicsr.utils import registry

    text = str(err.args[0]) if err.args else ''
    if not text.startswith('No object named'):
        return None
    for reg in (
        registry.ARCH_REGISTRY,
        registry.DATASET_REGISTRY,
        registry.MODEL_REGISTRY,
        registry.LOSS_REGISTRY,
        registry.METRIC_REGISTRY,
    ):
        if f"'{reg._name}' registry" in text:
            name = text.split("'")[1]
            known = ', '.join(sorted(reg.keys()))
            return (
                f"unknown type '{name}' in {_REGISTRY_SECTIONS.get(reg._name, reg._name)} "
                f'({reg._name} registry); registered: {known}'
            )
    return None


# --------------------------------------------------------------------------- what a builder was building
def _get(opt, key: str, default=None):
    return opt.get(key, default) if isinstance(opt, dict) else default


def _builders() -> dict:
    """Code object of each BasicSR builder -> (what it builds, its ``type``) from its frame's locals."""
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.models import build_model

    return {
        build_dataset.__code__: lambda f: (
            f"dataset '{_get(f.get('dataset_opt'), 'name', '?')}' ({_get(f.get('dataset_opt'), 'type', '?')})",
            _get(f.get('dataset_opt'), 'type', '?'),
        ),
        build_model.__code__: lambda f: (f'model_type {_get(f.get("opt"), "model_type")!r}', None),
        # build_network pops 'type' from its copy of the options into network_type.
        build_network.__code__: lambda f: (f'network {f.get("network_type")!r}', None),
    }


def builder_subject(tb: TracebackType | None) -> tuple[str, str | None] | None:
    """(what, type) the innermost BasicSR builder in traceback ``tb`` was building, or None."""
    builders, found = _builders(), None
    while tb is not None:
        describe = builders.get(tb.tb_frame.f_code)
        if describe is not None:
            found = describe(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return found


def setup_error_message(where: str, err: Exception, kind: str | None = None) -> str:
    """One line for ``err`` raised while building ``where`` (of type ``kind``)."""
    if isinstance(err, KeyError) and type(err) is KeyError:
        message = unknown_type_message(err)
        if message is not None:
            return message
        # BasicSR and the builders read options with opt[key]: a bare KeyError is a missing option.
        return f'{where}: missing option {err.args[0]!r}' if err.args else f'{where}: missing option'
    message = one_line(err)
    if kind and message.startswith(f'{kind}: '):
        message = message[len(kind) + 2 :]  # our datasets already prefix their class name
    return f'{where}: {message}'


def entry_error_message(err: BaseException, user_errors: tuple[type[BaseException], ...] = ()) -> str | None:
    """The one line an entry prints for ``err`` ending a BasicSR pipeline, or None (a bug: traceback).

    Args:
        err: The exception.
        user_errors: Further exception types whose message says all a user needs.
    """
    if isinstance(err, SETUP_ERRORS):
        subject = builder_subject(err.__traceback__)
        if subject is not None:
            return setup_error_message(subject[0], err, subject[1])
    if isinstance(err, (EntryError, *user_errors)):
        return one_line(err)
    if isinstance(err, KeyError):
        return unknown_type_message(err)
    return None


# --------------------------------------------------------------------------- network files
def torch_load_refuses_pickle() -> bool:
    """True when a plain ``torch.load`` (BasicSR's ``load_network``) runs with ``weights_only=True``.

    torch >= 2.6 defaults to it unless ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set (its own rule).
    """
    if os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0').lower() in ('1', 'y', 'yes', 'true'):
        return False
    version = re.match(r'(\d+)\.(\d+)', torch.__version__)
    return version is not None and (int(version.group(1)), int(version.group(2))) >= (2, 6)


def check_network_file(
    net: torch.nn.Module, load_path: str, strict: bool = True, param_key: str | None = 'params'
) -> None:
    """Raise :class:`CheckpointError` unless ``load_path`` loads into ``net`` as BasicSR would.

    BasicSR's ``load_network`` fails on a truncated file with a zip error that does not name the
    file, and on another arch's weights with a RuntimeError listing every key (hundreds of lines).
    This names the file and the counts and first few missing/unexpected/mis-shaped keys
    (:mod:`gaussiansr_arch.utils.weights`, the report the tools give too). BasicSR's key rule is
    kept: ``param_key`` (``params`` when it is absent), or the whole file for ``param_key=None``;
    a ``.safetensors`` file holds one set of parameters, which is used whatever key is asked for
    (``weights.network_param_key``).
    """
    from gaussiansr_arch.utils.weights import WeightsError, WeightsNeedPickleError, check_fits, read_network_state

    try:
        state, _ = read_network_state(load_path, param_key)
        check_fits(net, state, f'network file {load_path}', 'the options', strict)
    except WeightsNeedPickleError as err:
        if torch_load_refuses_pickle():  # BasicSR's torch.load would fail too, in a multi-line error
            raise CheckpointError(f'{err}; save the parameters alone (gaussiansr-convert-weights does)') from None
        return  # older torch: a legitimate pickle with custom objects, let BasicSR's own loader decide
    except WeightsError as err:
        raise CheckpointError(str(err)) from None
