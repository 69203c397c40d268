"""CPU adapters for BasicSR 1.4.2's trainer, installed by our entry points.

BasicSR assumes CUDA in two places the trainer always passes through:

* ``basicsr.train.load_resume_state`` maps the state onto ``torch.cuda.current_device()``
  and, with ``--auto_resume``, takes the highest-numbered ``.state`` even if it is a
  truncated file left by a kill (and looks for it relative to the working directory);
* ``basicsr.utils.dist_util.init_dist`` divides by ``torch.cuda.device_count()`` and uses NCCL.

``install_cpu_adapters()`` swaps in the versions below (idempotent). With CUDA present,
``init_dist`` delegates to BasicSR's own. It also wraps BasicSR's builders (datasets, models,
networks) and ``BaseModel.load_network`` so that bad options, data and weight files raise an
:class:`EntryError` with one line naming the option or file, which the entry points print
without a traceback (``GAUSSIANSR_DEBUG=1`` or ``--debug`` shows the traceback).
"""

import os
import re
from os import path as osp

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.utils import check_resume

from gaussiansr_arch.utils.checkpoint import load_checkpoint_cpu, try_load_checkpoint

_ORIGINALS: dict = {}


class ResumeStateError(RuntimeError):
    """A resume state that cannot be used (other experiment, missing network file ...)."""


class EntryError(RuntimeError):
    """A user error (options, data, weight files) found by the entry points; one-line message."""


class CheckpointError(EntryError):
    """A network file that cannot be loaded into the network it is meant for."""


def find_latest_resume_state(states_dir: str, models_dir: str | None = None) -> tuple[str, dict] | None:
    """The newest complete, loadable ``<iter>.state`` in ``states_dir`` and its content.

    Files that fail to load (truncated by a kill, foreign) are skipped, and so is a state
    whose ``net_g_<iter>.pth`` is missing or unreadable in ``models_dir`` (when given).

    Returns:
        (path, state) or None when there is no usable state.
    """
    if not osp.isdir(states_dir):
        return None
    iters = []
    for name in os.listdir(states_dir):
        stem, ext = osp.splitext(name)
        if ext == '.state' and stem.isdigit():
            iters.append(int(stem))
    for it in sorted(iters, reverse=True):
        path = osp.join(states_dir, f'{it}.state')
        state = try_load_checkpoint(path)
        if not isinstance(state, dict) or state.get('iter') != it:
            continue
        if models_dir is not None and try_load_checkpoint(osp.join(models_dir, f'net_g_{it}.pth')) is None:
            continue
        return path, state
    return None


def _state_experiment(state: dict, path: str) -> str:
    """Experiment a state belongs to: its recorded name, else ``experiments/<name>/training_states``."""
    if state.get('name'):
        return state['name']
    return osp.basename(osp.dirname(osp.dirname(osp.abspath(path))))


def load_resume_state(opt: dict) -> dict | None:
    """CPU-safe replacement for ``basicsr.train.load_resume_state``.

    ``--auto_resume`` picks the newest complete state of ``<root>/experiments/<name>``;
    otherwise ``path.resume_state`` is used. The state is loaded on the CPU (the optimizer's
    ``load_state_dict`` moves it to the parameters' device) and must belong to this experiment.

    Raises:
        ResumeStateError: the state is unreadable or belongs to another experiment.
    """
    if opt.get('auto_resume'):
        found = find_latest_resume_state(opt['path']['training_states'], opt['path']['models'])
        if found is None:
            return None
        path, state = found
        opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        if not path:
            return None
        state = try_load_checkpoint(path)
        if not isinstance(state, dict) or 'iter' not in state:
            raise ResumeStateError(f'resume_state {path} is not a readable BasicSR training state')
    owner = _state_experiment(state, path)
    if owner != opt['name']:
        raise ResumeStateError(f"resume_state {path} belongs to experiment '{owner}', not '{opt['name']}'")
    check_resume(opt, state['iter'])
    net_path = opt['path'].get('pretrain_network_g')
    if net_path and not osp.isfile(net_path):
        raise ResumeStateError(f'resume_state {path}: its network file {net_path} is missing')
    return state


def init_dist(launcher: str, backend: str = 'nccl', **kwargs) -> None:
    """``basicsr.utils.dist_util.init_dist`` that also works without CUDA (gloo, torchrun env vars)."""
    if torch.cuda.is_available():
        return _ORIGINALS['init_dist'](launcher, backend, **kwargs)
    if launcher != 'pytorch':
        raise ValueError(f"launcher '{launcher}' needs CUDA; on the CPU use torchrun with --launcher pytorch")
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')  # as BasicSR does, for dataloader workers
    # torchrun exports RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT: the default env:// init reads them.
    dist.init_process_group(backend='gloo', **kwargs)


# --------------------------------------------------------------------------- one-line errors
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


def _setup_error(where: str, err: Exception, kind: str | None = None) -> EntryError:
    """An :class:`EntryError` for an exception raised while building ``where`` (of type ``kind``)."""
    if isinstance(err, KeyError) and type(err) is KeyError:
        message = unknown_type_message(err)
        if message is not None:
            return EntryError(message)
        # BasicSR and the builders read options with opt[key]: a bare KeyError is a missing option.
        return EntryError(f'{where}: missing option {err.args[0]!r}' if err.args else f'{where}: missing option')
    message = one_line(err)
    if kind and message.startswith(f'{kind}: '):
        message = message[len(kind) + 2:]  # our datasets already prefix their class name
    return EntryError(f'{where}: {message}')


# Exceptions that the builders raise for bad options or files (anything else is a bug: traceback).
_SETUP_ERRORS = (ValueError, TypeError, KeyError, OSError)


def _build_dataset(dataset_opt: dict):
    """``basicsr.data.build_dataset`` whose option/data errors name the dataset on one line."""
    try:
        return _ORIGINALS['build_dataset'](dataset_opt)
    except _SETUP_ERRORS as err:
        name = dataset_opt.get('name', '?') if isinstance(dataset_opt, dict) else '?'
        kind = dataset_opt.get('type', '?') if isinstance(dataset_opt, dict) else '?'
        raise _setup_error(f"dataset '{name}' ({kind})", err, kind) from err


def _build_model(opt: dict):
    """``basicsr.models.build_model`` whose option errors name the model type on one line."""
    try:
        return _ORIGINALS['build_model'](opt)
    except _SETUP_ERRORS as err:
        raise _setup_error(f"model_type {opt.get('model_type')!r}", err) from err


def _build_network(opt: dict):
    """``basicsr.archs.build_network`` whose option errors name the arch on one line."""
    try:
        return _ORIGINALS['build_network'](opt)
    except _SETUP_ERRORS as err:
        kind = opt.get('type') if isinstance(opt, dict) else None
        raise _setup_error(f'network {kind!r}', err) from err


def check_network_file(net: torch.nn.Module, load_path: str, strict: bool = True,
                       param_key: str | None = 'params') -> None:
    """Raise :class:`CheckpointError` unless ``load_path`` loads into ``net`` as BasicSR would.

    BasicSR's ``load_network`` fails on a truncated file with a zip error that does not name the
    file, and on another arch's weights with a RuntimeError listing every key (hundreds of lines).
    This names the file and the counts and first few missing/unexpected/mis-shaped keys
    (:mod:`gaussiansr_arch.utils.weights`, the report the tools give too). BasicSR's key rule is
    kept: ``param_key`` (``params`` when it is absent), or the whole file for ``param_key=None``.
    """
    from gaussiansr_arch.utils.weights import (
        WeightsError,
        WeightsNeedPickleError,
        as_state_dict,
        check_fits,
        pick_state_dict,
        read_weights,
    )

    what = 'network file'
    try:
        ckpt = read_weights(load_path, what)
        if param_key is None:
            state = as_state_dict(ckpt, load_path, what)
        else:
            if isinstance(ckpt, dict) and param_key not in ckpt and 'params' in ckpt:
                param_key = 'params'  # BasicSR's fallback (params_ema absent)
            state = pick_state_dict(ckpt, load_path, param_key, what)
        check_fits(net, state, f'{what} {load_path}', 'the options', strict)
    except WeightsNeedPickleError:
        return  # a legitimate pickle with custom objects: let BasicSR's own loader decide
    except WeightsError as err:
        raise CheckpointError(str(err)) from None


def _load_network(self, net, load_path, strict=True, param_key='params'):
    """``BaseModel.load_network`` preceded by :func:`check_network_file`."""
    check_network_file(self.get_bare_model(net), load_path, strict, param_key)
    return _ORIGINALS['load_network'](self, net, load_path, strict, param_key)


def install_cpu_adapters() -> None:
    """Patch BasicSR's module attributes with the adapters above (safe to call twice)."""
    import basicsr.archs
    import basicsr.data
    import basicsr.models
    import basicsr.models.base_model
    import basicsr.models.sr_model
    import basicsr.test
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options

    _ORIGINALS.setdefault('init_dist', basicsr.utils.dist_util.init_dist)
    _ORIGINALS.setdefault('load_resume_state', basicsr.train.load_resume_state)
    _ORIGINALS.setdefault('build_dataset', basicsr.data.build_dataset)
    _ORIGINALS.setdefault('build_model', basicsr.models.build_model)
    _ORIGINALS.setdefault('build_network', basicsr.archs.build_network)
    _ORIGINALS.setdefault('load_network', basicsr.models.base_model.BaseModel.load_network)
    # parse_options looks init_dist up in basicsr.utils.options' namespace, the trainer
    # looks load_resume_state up in basicsr.train's: patch where they are looked up.
    basicsr.utils.dist_util.init_dist = init_dist
    basicsr.utils.options.init_dist = init_dist
    basicsr.train.load_resume_state = load_resume_state
    # The pipelines and SRModel import the builders by name: patch their namespaces only,
    # so library users calling basicsr.data.build_dataset directly keep BasicSR's behaviour.
    for module in (basicsr.train, basicsr.test):
        module.build_dataset = _build_dataset
        module.build_model = _build_model
    basicsr.models.sr_model.build_network = _build_network
    basicsr.models.base_model.BaseModel.load_network = _load_network


def load_training_state(path: str) -> dict:
    """Load a ``.state`` on the CPU (helper for tools and tests)."""
    return load_checkpoint_cpu(path)


# --------------------------------------------------------------------------- entry points
# Registry name -> where its ``type`` comes from in the YAML (for one-line errors).
_REGISTRY_SECTIONS = {'arch': 'network_g', 'dataset': 'datasets', 'model': 'model_type', 'loss': 'train',
                      'metric': 'val.metrics'}


def unknown_type_message(err: KeyError) -> str | None:
    """One line for BasicSR's "No object named 'X' found in 'Y' registry!", else None."""
    from basicsr.utils import registry

    text = str(err.args[0]) if err.args else ''
    if not text.startswith('No object named'):
        return None
    for reg in (registry.ARCH_REGISTRY, registry.DATASET_REGISTRY, registry.MODEL_REGISTRY,
                registry.LOSS_REGISTRY, registry.METRIC_REGISTRY):
        if f"'{reg._name}' registry" in text:
            name = text.split("'")[1]
            known = ', '.join(sorted(reg.keys()))
            return (f"unknown type '{name}' in {_REGISTRY_SECTIONS.get(reg._name, reg._name)} "
                    f'({reg._name} registry); registered: {known}')
    return None


def _option_file_error(rest: list[str], pipeline: str) -> str | None:
    """A one-line problem with the ``-opt`` YAML that BasicSR would report as a traceback, or None.

    Only the keys BasicSR reads unconditionally before building anything are checked here;
    everything deeper is reported by the wrapped builders.
    """
    import yaml

    if '-opt' not in rest or rest.index('-opt') + 1 >= len(rest):
        return None  # BasicSR's argparse prints its usage error
    path = rest[rest.index('-opt') + 1]
    if not osp.isfile(path):
        return f'options file {path} does not exist'
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        return f'options file {path} is not valid YAML: {one_line(err)[:200]}'
    if not isinstance(opt, dict):
        return f'options file {path} must be a mapping of options'
    required = ['name', 'model_type', 'num_gpu', 'datasets', 'path'] + (['train', 'logger'] if pipeline == 'train'
                                                                        else [])
    missing = [k for k in required if k not in opt]
    if missing:
        return f'options file {path}: missing top-level option(s) {missing}'
    for key in ('datasets', 'path', *(('train', 'logger') if pipeline == 'train' else ())):
        if not isinstance(opt[key], dict):
            return f'options file {path}: {key} must be a mapping, got {opt[key]!r}'
    for phase, dataset in opt['datasets'].items():
        if not isinstance(dataset, dict):
            return f'options file {path}: datasets.{phase} must be a mapping, got {dataset!r}'
    if pipeline == 'train':
        if 'train' not in opt['datasets']:
            return f'options file {path}: datasets has no train set'
        if 'total_iter' not in opt['train']:
            return f'options file {path}: missing option train.total_iter'
        if 'batch_size_per_gpu' not in opt['datasets']['train']:
            return f'options file {path}: missing option datasets.train.batch_size_per_gpu'
    return _numeric_option_error(opt, path, pipeline)


# Numbers BasicSR's trainer converts or compares itself (a string there ends in a traceback).
_TRAINER_NUMBERS = (('train', 'total_iter'), ('train', 'warmup_iter'), ('logger', 'print_freq'),
                    ('logger', 'save_checkpoint_freq'), ('val', 'val_freq'), ('manual_seed',),
                    ('datasets', 'train', 'batch_size_per_gpu'), ('datasets', 'train', 'num_worker_per_gpu'),
                    ('datasets', 'train', 'dataset_enlarge_ratio'))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_option_error(opt: dict, path: str, pipeline: str) -> str | None:
    """One line naming the first trainer option that should be a number and is not, or None."""
    if pipeline != 'train':
        return None
    for keys in _TRAINER_NUMBERS:
        value = opt
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        problem = _value_error('.'.join(keys), value, 'number') if value is not None else None
        if problem:
            return f'options file {path}: {problem}'
    problem = _optimization_option_error(opt['train'])
    return f'options file {path}: {problem}' if problem else None


# What basicsr 1.4.2 builds from ``train``: ``get_optimizer`` knows only Adam; ``setup_schedulers``
# these schedulers. Values: 'number', 'numbers' (a list), 'integers', or a tuple of allowed words.
_OPTIMIZERS = {'Adam': {'lr': 'number', 'betas': 'numbers', 'eps': 'number', 'weight_decay': 'number',
                        'amsgrad': 'bool', 'foreach': 'bool', 'maximize': 'bool', 'capturable': 'bool',
                        'differentiable': 'bool', 'fused': 'bool', 'decoupled_weight_decay': 'bool'}}
_MULTISTEP = {'milestones': 'integers', 'gamma': 'number', 'restarts': 'integers', 'restart_weights': 'numbers'}
_SCHEDULERS = {'MultiStepLR': _MULTISTEP, 'MultiStepRestartLR': _MULTISTEP,
               'CosineAnnealingRestartLR': {'periods': 'integers', 'restart_weights': 'numbers', 'eta_min': 'number'}}
_PIXEL_LOSS = {'loss_weight': 'number', 'reduction': ('none', 'mean', 'sum'), 'eps': 'number'}
_TRAIN_NUMBERS = {'ema_decay': 'number', 'grad_clip': 'number'}


def _value_error(key: str, value, kind) -> str | None:
    if isinstance(kind, tuple):
        ok, want = value in kind, f'one of {list(kind)}'
    elif kind == 'bool':
        ok, want = isinstance(value, bool), 'true or false'
    elif kind == 'number':
        ok, want = _is_number(value), 'a number'
    else:
        test = _is_number if kind == 'numbers' else (lambda v: isinstance(v, int) and not isinstance(v, bool))
        ok = isinstance(value, list) and all(test(v) for v in value)
        want = 'a list of numbers' if kind == 'numbers' else 'a list of integers'
    if ok:
        return None
    return f'{key} must be {want}, got {value!r}{_number_text_hint(value)}'


def _number_text_hint(value) -> str:
    """Why a number came out of the YAML as text, for the two usual reasons."""
    if not isinstance(value, str):
        return ''
    try:
        float(value)
    except ValueError:
        return ''
    mantissa, _, exponent = value.lower().partition('e')
    if exponent and '.' not in mantissa:
        return f' (YAML reads {value} as text: write {mantissa}.0e{exponent} or !!float {value})'
    return ' (a quoted number is text: write it without quotes)'


def _section_error(section, name: str, kinds: dict, required: tuple[str, ...] = ()) -> str | None:
    """First unknown key, missing key or mistyped value of an options mapping, as one line."""
    if not isinstance(section, dict):
        return f'{name} must be a mapping, got {section!r}'
    for key in required:
        if key not in section:
            return f'missing option {name}.{key}'
    for key, value in section.items():
        if key == 'type':
            continue
        if key not in kinds:
            return f'{name}: unknown option {key!r}; known: {sorted(kinds)}'
        problem = _value_error(f'{name}.{key}', value, kinds[key])
        if problem:
            return problem
    return None


def _optimization_option_error(train: dict) -> str | None:
    """One line for a bad ``train.optim_g`` / ``train.scheduler`` / ``train.pixel_opt`` option, or None.

    BasicSR hands these to the optimizer and scheduler constructors as they are: a quoted number
    either ends in a traceback or, for scheduler values, is silently accepted until it is used.
    """
    for key, kind in _TRAIN_NUMBERS.items():
        if train.get(key) is not None:
            problem = _value_error(f'train.{key}', train[key], kind)
            if problem:
                return problem
    sections = (('optim_g', _OPTIMIZERS, ('lr',)), ('scheduler', _SCHEDULERS, ()))
    for key, known, required in sections:
        if key not in train:
            continue
        section = train[key]
        kind = section.get('type') if isinstance(section, dict) else None
        if kind not in known:
            return f'train.{key}.type must be one of {sorted(known)} (what basicsr 1.4.2 builds), got {kind!r}'
        problem = _section_error(section, f'train.{key}', known[kind], required)
        if problem:
            return problem
    if train.get('pixel_opt'):
        return _section_error(train['pixel_opt'], 'train.pixel_opt', _PIXEL_LOSS)
    return None


def run_basicsr_entry(pipeline: str, argv: list[str] | None, prog: str) -> None:
    """Shared body of ``gaussiansr-train``/``gaussiansr-test``.

    Parses ``--root`` (where experiments/, tb_logger/, results/ go; default: the working
    directory), hands every other argument to BasicSR's own parser through ``sys.argv``,
    installs the CPU adapters and runs ``basicsr.<pipeline>``. Usage errors that BasicSR
    reports as tracebacks (unknown registry type, missing or mistyped options, unreadable
    images, missing LMDB keys, weights of another arch, truncated weight files, unusable
    resume states, a non-finite loss) exit with one line; set ``GAUSSIANSR_DEBUG=1`` (or pass
    ``--debug``) to get the traceback instead.

    Args:
        pipeline (str): 'train' or 'test'.
        argv (list[str] | None): Arguments without the program name; None = ``sys.argv[1:]``.
        prog (str): Program name shown in messages and recorded in the copied YAML.
    """
    import argparse
    import sys

    import basicsr.test
    import basicsr.train

    import gaussiansr_arch  # noqa: F401  (registers archs, datasets, models)

    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    parser.add_argument('--root', default=None)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if any(a in ('-h', '--help') for a in rest):
        print(f'usage: {prog} -opt YAML [--launcher none|pytorch|slurm] [--auto_resume] [--debug] '
              '[--force_yml K:K=V ...] [--local_rank N] [--root DIR]\n'
              '  --root DIR  folder receiving experiments/, tb_logger/ and results/ (default: cwd)')
        return
    # torch.distributed.launch passes --local-rank, which BasicSR's parser rejects.
    rest = [a.replace('--local-rank', '--local_rank', 1) if a.startswith('--local-rank') else a for a in rest]
    root = osp.abspath(args.root if args.root is not None else os.getcwd())
    debug = os.environ.get('GAUSSIANSR_DEBUG', '') not in ('', '0') or '--debug' in rest
    problem = _option_file_error(rest, pipeline)
    if problem is not None:
        raise SystemExit(f'{prog}: error: {problem}')
    install_cpu_adapters()
    from gaussiansr_arch.data.arbitrary_scale_dataset import LmdbKeyError
    from gaussiansr_arch.models.arbitrary_scale_sr_model import NonFiniteLossError
    from gaussiansr_arch.utils.image_io import ImageReadError

    # Errors whose message says all a user needs (which option, file or iteration).
    user_errors = (ResumeStateError, EntryError, ImageReadError, LmdbKeyError, NonFiniteLossError)
    run = basicsr.train.train_pipeline if pipeline == 'train' else basicsr.test.test_pipeline
    saved_argv = sys.argv
    sys.argv = [prog, *rest]
    try:
        run(root)
    except user_errors as err:
        if debug:
            raise
        raise SystemExit(f'{prog}: error: {one_line(err)}') from None
    except KeyError as err:
        message = unknown_type_message(err)
        if message is None or debug:
            raise
        raise SystemExit(f'{prog}: error: {message}') from None
    finally:
        sys.argv = saved_argv
