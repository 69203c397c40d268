"""Checks of a BasicSR options mapping that BasicSR itself would answer with a traceback, or not at all.

Pure functions on the dict the YAML holds; each returns one line naming the first problem, or None:

* :func:`options_error`: the top-level keys BasicSR reads unconditionally before building anything
  (``name``, ``model_type``, ``num_gpu``, ``datasets``, ``path``; to train also ``train``, ``logger``,
  a train set, ``train.total_iter``, ``datasets.train.batch_size_per_gpu`` or ``total_batch_size``),
  then :func:`trainer_numbers_error`;
* :func:`trainer_numbers_error`: numbers BasicSR's trainer converts or compares itself (``train.total_iter``,
  ``logger.print_freq`` ...), then :func:`optimization_error`;
* :func:`optimization_error`: ``train.optim_g`` / ``train.scheduler`` / ``train.pixel_opt`` and the
  trainer numbers ``ema_decay``, ``grad_clip``, against what basicsr 1.4.2 builds.

:func:`options_file_error` reads the ``-opt`` YAML and prefixes the problem with the file.
Everything deeper (dataset, network, model options) is reported by the datasets and models.
"""

from os import path as osp

import yaml

from gaussiansr_arch.utils.entry_errors import one_line

# Numbers BasicSR's trainer converts or compares itself (a string there ends in a traceback).
TRAINER_NUMBERS = (
    ('train', 'total_iter'),
    ('train', 'warmup_iter'),
    ('logger', 'print_freq'),
    ('logger', 'save_checkpoint_freq'),
    ('val', 'val_freq'),
    ('manual_seed',),
    ('datasets', 'train', 'batch_size_per_gpu'),
    ('datasets', 'train', 'total_batch_size'),
    ('datasets', 'train', 'num_worker_per_gpu'),
    ('datasets', 'train', 'dataset_enlarge_ratio'),
)

# What basicsr 1.4.2 builds from ``train``: ``get_optimizer`` knows only Adam; ``setup_schedulers``
# these schedulers. Values: 'number', 'numbers' (a list), 'integers', 'bool', or a tuple of allowed words.
OPTIMIZERS = {
    'Adam': {
        'lr': 'number',
        'betas': 'numbers',
        'eps': 'number',
        'weight_decay': 'number',
        'amsgrad': 'bool',
        'foreach': 'bool',
        'maximize': 'bool',
        'capturable': 'bool',
        'differentiable': 'bool',
        'fused': 'bool',
        'decoupled_weight_decay': 'bool',
    }
}
_MULTISTEP = {'milestones': 'integers', 'gamma': 'number', 'restarts': 'integers', 'restart_weights': 'numbers'}
SCHEDULERS = {
    'MultiStepLR': _MULTISTEP,
    'MultiStepRestartLR': _MULTISTEP,
    'CosineAnnealingRestartLR': {'periods': 'integers', 'restart_weights': 'numbers', 'eta_min': 'number'},
}
PIXEL_LOSS = {'loss_weight': 'number', 'reduction': ('none', 'mean', 'sum'), 'eps': 'number'}
TRAIN_NUMBERS = {'ema_decay': 'number', 'grad_clip': 'number'}


def options_file_error(path: str, pipeline: str) -> str | None:
    """One line for an ``-opt`` file that is missing, not YAML, not a mapping or fails :func:`options_error`."""
    if not osp.isfile(path):
        return f'options file {path} does not exist'
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        return f'options file {path} is not valid YAML: {one_line(err)[:200]}'
    if not isinstance(opt, dict):
        return f'options file {path} must be a mapping of options'
    problem = options_error(opt, pipeline)
    return f'options file {path}: {problem}' if problem else None


def options_error(opt: dict, pipeline: str) -> str | None:
    """The first missing or mistyped option BasicSR reads before building anything, or None.

    Args:
        opt (dict): The options as the YAML holds them.
        pipeline (str): 'train' or 'test'.
    """
    training = pipeline == 'train'
    required = ['name', 'model_type', 'num_gpu', 'datasets', 'path'] + (['train', 'logger'] if training else [])
    missing = [k for k in required if k not in opt]
    if missing:
        return f'missing top-level option(s) {missing}'
    for key in ('datasets', 'path', *(('train', 'logger') if training else ())):
        if not isinstance(opt[key], dict):
            return f'{key} must be a mapping, got {opt[key]!r}'
    for phase, dataset in opt['datasets'].items():
        if not isinstance(dataset, dict):
            return f'datasets.{phase} must be a mapping, got {dataset!r}'
    if not training:
        return None
    if 'train' not in opt['datasets']:
        return 'datasets has no train set'
    if 'total_iter' not in opt['train']:
        return 'missing option train.total_iter'
    if not {'batch_size_per_gpu', 'total_batch_size'} & set(opt['datasets']['train']):
        return 'missing option datasets.train.batch_size_per_gpu (or total_batch_size)'
    return trainer_numbers_error(opt)


def trainer_numbers_error(opt: dict) -> str | None:
    """The first trainer option that should be a number and is not, then :func:`optimization_error`."""
    for keys in TRAINER_NUMBERS:
        value = opt
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        problem = value_error('.'.join(keys), value, 'number') if value is not None else None
        if problem:
            return problem
    return optimization_error(opt['train'])


def optimization_error(train: dict) -> str | None:
    """One line for a bad ``train.optim_g`` / ``train.scheduler`` / ``train.pixel_opt`` option, or None.

    BasicSR hands these to the optimizer and scheduler constructors as they are: a quoted number
    either ends in a traceback or, for scheduler values, is silently accepted until it is used.
    """
    for key, kind in TRAIN_NUMBERS.items():
        if train.get(key) is not None:
            problem = value_error(f'train.{key}', train[key], kind)
            if problem:
                return problem
    sections = (('optim_g', OPTIMIZERS, ('lr',)), ('scheduler', SCHEDULERS, ()))
    for key, known, required in sections:
        if key not in train:
            continue
        section = train[key]
        kind = section.get('type') if isinstance(section, dict) else None
        if kind not in known:
            return f'train.{key}.type must be one of {sorted(known)} (what basicsr 1.4.2 builds), got {kind!r}'
        problem = section_error(section, f'train.{key}', known[kind], required)
        if problem:
            return problem
    if train.get('pixel_opt'):
        return section_error(train['pixel_opt'], 'train.pixel_opt', PIXEL_LOSS)
    return None


def section_error(section, name: str, kinds: dict, required: tuple[str, ...] = ()) -> str | None:
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
        problem = value_error(f'{name}.{key}', value, kinds[key])
        if problem:
            return problem
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_error(key: str, value, kind) -> str | None:
    """``<key> must be <kind>, got <value>`` (with why a number is text), or None when it is one."""
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
    return f'{key} must be {want}, got {value!r}{number_text_hint(value)}'


def number_text_hint(value) -> str:
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
