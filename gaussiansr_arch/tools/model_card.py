"""Write the model card (``README.md`` with Hugging Face front matter) of a trained BasicSR run.

    gaussiansr-model-card experiments/GaussianSR_EDSR-baseline_DIV2K
    gaussiansr-model-card experiments/<run> --weights gaussiansr_edsr.safetensors -o publish/README.md

Everything the card says comes from the run folder BasicSR writes (``experiments/<name>/``):

* the options file BasicSR copied there (``<yml>``, with the command line in its header): the arch
  (``network_g``, built through the registry for its parameter count), the training data, the
  schedule and the validation protocol;
* the training logs (``train_*.log``, parsed by :mod:`gaussiansr_arch.toolkit.training_log`, the
  parser of ``gaussiansr-plot-curves``): the validation table, how far training went, the world size;
* the weights (``models/net_g_<iter>.pth`` / ``.safetensors``, the latest by default, or
  ``--weights``): name, size, sha256, which parameters (EMA or not), the iteration they were saved at.
  They are checked to load strictly into the run's arch before anything is written.

Then the card gives the commands to reproduce the run and to use the weights, and its limitations
(the iterations trained against the reference schedule of the arch, a configuration that is not
the paper's, the training degradation and scales). Errors are one line with exit status 2;
the card is written atomically and an existing file is replaced only with ``--force``.
"""

import argparse
import glob
import hashlib
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from gaussiansr_arch._version import __version__
from gaussiansr_arch.toolkit.training_log import Curves, TrainingProgress, parse_logs, training_progress
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    check_output_dir,
    check_output_free,
    count_parameters,
    load_yaml,
    write_text_atomic,
)
from gaussiansr_arch.utils.methods import get_method
from gaussiansr_arch.utils.weights import (
    DEFAULT_PARAM_KEYS,
    WeightsError,
    build_arch,
    is_safetensors,
    load_model,
    pick_state_dict,
    picked_key,
    read_weights,
    recorded_network_opt,
)

PROG = 'gaussiansr-model-card'
CARD_NAME = 'README.md'
DEFAULT_LICENSE = 'apache-2.0'
LIBRARY_NAME = 'gaussiansr_arch'
BASE_TAGS = ('super-resolution', 'arbitrary-scale', 'basicsr', 'gaussiansr_arch', 'pytorch')
PIPELINE_TAG = 'image-to-image'
# net_g_<iter>.pth / net_g_latest.safetensors ... as BasicSR (and logger.save_safetensors) name them.
CHECKPOINT_RE = re.compile(r'^net_g_(\d+|latest)\.(pth|safetensors)$')
# What ArbitraryScaleImageDataset does when an option is absent (its docstring).
TRAIN_DEFAULTS = {'lr_size': 48, 'scale_min': 1, 'scale_max': 4, 'sample_q': 2304, 'lr_degradation': 'matlab'}
DEGRADATIONS = {
    'matlab': "MATLAB bicubic (BasicSR's imresize, antialiased)",
    'pil': "PIL bicubic (LIIF's resize_fn)",
}
METRIC_NAMES = {'psnr': 'PSNR', 'ssim': 'SSIM', 'lpips': 'LPIPS', 'niqe': 'NIQE'}


def default_model(arch: str) -> tuple[str, str]:
    """What an arch built with no options is, and one line on it (its method descriptor; said when a
    run's ``network_g`` is not that)."""
    method = get_method(arch)
    name = method.default_model if method is not None and method.default_model else None
    return name or f"{arch}'s default configuration", method.description if method is not None else ''


# ---------------------------------------------------------------------------- what the run folder holds
@dataclass
class RunFolder:
    """The files of a BasicSR run folder the card reads."""

    path: str
    options_file: str
    opt: dict
    logs: list[str]
    command: str | None = None  # the command line BasicSR wrote into the copied options file


def options_command(path: str) -> str | None:
    """The command BasicSR's ``copy_opt_file`` wrote into the header (``# CMD:`` then ``# <cmd>``)."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            head = [next(f, '') for _ in range(4)]
    except OSError:
        return None
    for i, line in enumerate(head[:-1]):
        if line.strip() == '# CMD:' and head[i + 1].startswith('# '):
            return head[i + 1][2:].strip() or None
    return None


def find_run(run_dir: str) -> RunFolder:
    """The options file and logs of a run folder; ToolError naming what is missing.

    Several options files (a run resumed with another YAML name): the newest one that has a
    ``network_g`` (the last launch's options).
    """
    if not os.path.exists(run_dir):
        raise ToolError(f'run folder {run_dir}: no such folder')
    if not os.path.isdir(run_dir):
        raise ToolError(f'run folder {run_dir} is a file; give the folder experiments/<name>')
    yamls = sorted(p for ext in ('yml', 'yaml') for p in glob.glob(os.path.join(run_dir, f'*.{ext}')))
    if not yamls:
        raise ToolError(f'run folder {run_dir}: no options file (*.yml) inside (BasicSR copies the training YAML)')
    loaded = [(p, load_yaml(p)) for p in sorted(yamls, key=os.path.getmtime, reverse=True)]
    with_network = [(p, opt) for p, opt in loaded if isinstance(opt.get('network_g'), dict)]
    if not with_network:
        raise ToolError(f'options file {loaded[0][0]}: no network_g mapping')
    options_file, opt = with_network[0]
    logs = sorted(glob.glob(os.path.join(run_dir, 'train_*.log')))
    if not logs:
        raise ToolError(f'run folder {run_dir}: no training log (train_*.log) inside')
    return RunFolder(run_dir, options_file, opt, logs, options_command(options_file))


def checkpoints(run_dir: str) -> dict[int | str, str]:
    """``{iteration or 'latest': path}`` of ``models/net_g_*``; ``.safetensors`` wins over ``.pth`` of one iteration."""
    found: dict[int | str, str] = {}
    models = os.path.join(run_dir, 'models')
    names = sorted(os.listdir(models)) if os.path.isdir(models) else []
    for name in names:
        match = CHECKPOINT_RE.match(name)
        if match and os.path.isfile(os.path.join(models, name)):
            it = match.group(1)
            key = 'latest' if it == 'latest' else int(it)
            if key not in found or match.group(2) == 'safetensors':
                found[key] = os.path.join(models, name)
    return found


def final_iteration(opt: dict, progress: TrainingProgress) -> int | None:
    """The iteration ``net_g_latest`` was saved at: ``total_iter`` when the last log ended training."""
    total = (opt.get('train') or {}).get('total_iter')
    if progress.ended and isinstance(total, (int, float)):
        return int(total)
    return None


def default_weights(run: RunFolder, progress: TrainingProgress) -> tuple[str, int | None]:
    """The latest weights of the run and their iteration.

    The highest ``net_g_<iter>``; ``net_g_latest`` instead when training ended after it
    (BasicSR saves ``latest`` at the end of training, whatever ``save_checkpoint_freq``).
    """
    found = checkpoints(run.path)
    numbered = sorted(k for k in found if k != 'latest')
    final = final_iteration(run.opt, progress)
    if 'latest' in found and (not numbered or (final is not None and final > numbered[-1])):
        return found['latest'], final
    if not numbered:
        raise ToolError(
            f'run folder {run.path}: no weights (models/net_g_<iter>.pth or .safetensors) inside; pass --weights'
        )
    return found[numbered[-1]], numbered[-1]


def same_tensors(a: dict, b: dict) -> bool:
    """Same names, shapes, dtypes and values."""
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def weights_iteration(path: str, state: dict, run: RunFolder, progress: TrainingProgress) -> tuple[int | None, str]:
    """(iteration, how it is known) of the weights the card describes.

    A file of the run's ``models/`` folder: from its name (``net_g_<iter>``; ``net_g_latest`` = the
    end of training). Any other file (a converted ``.safetensors`` ...): the checkpoint of the run
    holding the same parameters (newest first), else unknown; its name alone proves nothing.
    """
    found = checkpoints(run.path)
    match = CHECKPOINT_RE.match(os.path.basename(path))
    in_run = os.path.dirname(os.path.abspath(path)) == os.path.abspath(os.path.join(run.path, 'models'))
    if in_run and match and match.group(1) != 'latest':
        return int(match.group(1)), 'its file name'
    if in_run and match and (final := final_iteration(run.opt, progress)) is not None:
        return final, 'the end of training (net_g_latest)'
    for it in sorted((k for k in found if k != 'latest'), reverse=True):
        try:
            ckpt = read_weights(found[it])
        except WeightsError:
            continue
        candidates = [ckpt[k] for k in DEFAULT_PARAM_KEYS if isinstance(ckpt, dict) and isinstance(ckpt.get(k), dict)]
        for params in candidates:
            if same_tensors(state, {k.removeprefix('module.'): v for k, v in params.items()}):
                return it, f'the same parameters as models/{os.path.basename(found[it])}'
    return None, 'equal to no numbered checkpoint of the run'


def file_digest(path: str) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest(), os.path.getsize(path)


# ---------------------------------------------------------------------------- what the card says
@dataclass
class WeightsFacts:
    """The weights file the card describes."""

    path: str
    sha256: str
    size: int
    param_key: str
    records_network_g: bool
    iteration: int | None
    iteration_source: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class ValidationRow:
    """One (dataset, metric) of the validation table; values as logged (4 decimals)."""

    dataset: str
    metric: str
    scale: Any
    protocol: str
    better: str
    last_iter: int
    last: float
    best_iter: int
    best: float
    at_weights: float | None


@dataclass
class CardFacts:
    """Everything the card states, gathered from the run folder (see :func:`gather`)."""

    name: str
    run: RunFolder
    network_g: dict
    parameters: int
    default_parameters: int | None
    option_changes: list[tuple[str, Any, Any]]
    weights: WeightsFacts
    progress: TrainingProgress
    rows: list[ValidationRow]
    license: str = DEFAULT_LICENSE
    dataset_ids: list[str] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return str(self.network_g['type'])

    @property
    def opt(self) -> dict:
        return self.run.opt


def plain(value: Any) -> Any:
    """``value`` as JSON types (tuples -> lists), for comparing options written differently."""
    return json.loads(json.dumps(value, default=str))


def option_changes(network_g: dict) -> list[tuple[str, Any, Any]]:
    """(option, value, default) of ``network_g`` options that differ from the arch's constructor defaults.

    Options whose default is None (``encoder_opt``, ``decoder_hidden``: "the component's own") are
    listed only when set, with default None: whether they change the model shows in the parameter count.
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    try:
        signature = inspect.signature(ARCH_REGISTRY.get(network_g['type']).__init__)
    except (KeyError, TypeError, ValueError):
        return []
    changes = []
    for key, value in network_g.items():
        param = signature.parameters.get(key)
        if key == 'type' or param is None or param.default is inspect.Parameter.empty:
            continue
        if param.default is None:
            if value is not None:
                changes.append((key, value, None))
        elif plain(value) != plain(param.default):
            changes.append((key, value, param.default))
    return changes


def val_datasets(opt: dict) -> dict[str, dict]:
    """``{name as logged: dataset options}`` of the validation sets (BasicSR's phase: the key before ``_``)."""
    found = {}
    for key, ds in (opt.get('datasets') or {}).items():
        if str(key).split('_')[0] == 'val' and isinstance(ds, dict):
            found[str(ds.get('name', key))] = ds
    return found


def metric_options(opt: dict, dataset: dict | None) -> dict:
    """The metrics of a validation set: its own ``metrics`` (ArbitraryScaleSRModel), else ``val.metrics``."""
    return (dataset or {}).get('metrics') or (opt.get('val') or {}).get('metrics') or {}


def protocol(metric_opt: dict) -> str:
    """``'Y channel, crop 4'`` / ``'RGB, crop 8'`` from BasicSR's metric options."""
    if not isinstance(metric_opt, dict):
        return ''
    parts = []
    if 'test_y_channel' in metric_opt:
        parts.append('Y channel' if metric_opt['test_y_channel'] else 'RGB')
    if 'crop_border' in metric_opt:
        parts.append(f'crop {metric_opt["crop_border"]}')
    return ', '.join(parts)


def validation_rows(curves: Curves, opt: dict, weights_iter: int | None) -> list[ValidationRow]:
    """The last and the best value of every (dataset, metric) logged, in the YAML's order of datasets.

    "Best" follows the metric's ``better`` option (BasicSR's; ``higher`` by default); ties go to
    the earliest iteration, as BasicSR keeps its best.
    """
    datasets = val_datasets(opt)
    order = {name: i for i, name in enumerate(datasets)}
    rows = []
    for dataset, metric in sorted(curves, key=lambda k: (order.get(k[0], len(order)), k[0], k[1])):
        points = sorted(curves[(dataset, metric)].items())
        if not points:
            continue
        ds = datasets.get(dataset)
        metric_opt = metric_options(opt, ds).get(metric, {})
        better = str(metric_opt.get('better', 'higher')) if isinstance(metric_opt, dict) else 'higher'
        sign = -1.0 if better == 'lower' else 1.0
        best_iter, best = max(points, key=lambda p: (sign * p[1], -p[0]))
        last_iter, last = points[-1]
        rows.append(
            ValidationRow(
                dataset=dataset,
                metric=metric,
                scale=(ds or {}).get('scale'),
                protocol=protocol(metric_opt),
                better=better,
                last_iter=last_iter,
                last=last,
                best_iter=best_iter,
                best=best,
                at_weights=curves[(dataset, metric)].get(weights_iter) if weights_iter is not None else None,
            )
        )
    return rows


def gather(
    run_dir: str,
    weights: str | None = None,
    license_id: str = DEFAULT_LICENSE,
    dataset_ids: list[str] | None = None,
    name: str | None = None,
) -> CardFacts:
    """Read the run folder and the weights: everything the card states.

    Raises:
        ToolError: a missing run folder, options file, log or weights (one line naming it).
        WeightsError: weights that cannot be read or do not fit the run's ``network_g``.
    """
    run = find_run(run_dir)
    progress = training_progress(run.logs)
    network_g = dict(run.opt['network_g'])
    source = f'options file {run.options_file}'
    build_arch(network_g, source)  # a network_g that cannot be built is reported before the weights
    weights_path = weights if weights is not None else default_weights(run, progress)[0]
    ckpt = read_weights(weights_path)
    state = pick_state_dict(ckpt, weights_path)
    recorded = recorded_network_opt(ckpt)
    if recorded is not None and plain(recorded) != plain(network_g):
        raise WeightsError(
            f'weights file {weights_path} records a network_g different from the one of {source}; '
            'give the weights of this run'
        )
    arch = load_model(weights_path, network_g=network_g, source=source)  # the one loader: fits, loads
    iteration, iteration_source = weights_iteration(weights_path, state, run, progress)
    sha256, size = file_digest(weights_path)
    facts_weights = WeightsFacts(
        path=weights_path,
        sha256=sha256,
        size=size,
        param_key=picked_key(ckpt, None),
        records_network_g=recorded is not None,
        iteration=iteration,
        iteration_source=iteration_source,
    )
    try:
        default_parameters = count_parameters(build_arch({'type': network_g['type']}, source))
    except WeightsError:  # an arch without defaults for every option
        default_parameters = None
    return CardFacts(
        name=name or str(run.opt.get('name') or os.path.basename(os.path.normpath(run_dir))),
        run=run,
        network_g=network_g,
        parameters=count_parameters(arch),
        default_parameters=default_parameters,
        option_changes=option_changes(network_g),
        weights=facts_weights,
        progress=progress,
        rows=validation_rows(parse_logs(run.logs), run.opt, iteration),
        license=license_id,
        dataset_ids=list(dataset_ids or []),
    )


# ---------------------------------------------------------------------------- writing it down
def slug(text: str) -> str:
    """``'DIV2K-val-x2'`` -> ``'div2k-val-x2'`` (model-index dataset types are ids)."""
    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-') or 'dataset'


def metric_label(metric: str) -> str:
    return METRIC_NAMES.get(metric.lower(), metric)


def front_matter(facts: CardFacts) -> dict:
    """The card's YAML metadata (Hugging Face model-card keys).

    ``model-index`` holds the validations logged at the weights' iteration (none: no model-index).
    """
    meta: dict[str, Any] = {
        'license': facts.license,
        'library_name': LIBRARY_NAME,
        'pipeline_tag': PIPELINE_TAG,
        'tags': [*BASE_TAGS, facts.arch.lower()],
    }
    encoder = facts.network_g.get('encoder')
    if isinstance(encoder, str):
        meta['tags'].append(encoder.lower())
    if facts.dataset_ids:
        meta['datasets'] = list(facts.dataset_ids)
    results: dict[str, dict] = {}
    for row in facts.rows:
        if row.at_weights is None:
            continue
        entry = results.setdefault(
            row.dataset,
            {
                'task': {'type': PIPELINE_TAG, 'name': 'Image super-resolution'},
                'dataset': {'name': row.dataset, 'type': slug(row.dataset)},
                'metrics': [],
            },
        )
        if row.scale is not None:
            entry['dataset']['args'] = {'scale': row.scale}
        label = metric_label(row.metric) + (f' ({row.protocol})' if row.protocol else '')
        entry['metrics'].append(
            {'type': row.metric, 'value': row.at_weights, 'name': f'{label}, iteration {facts.weights.iteration}'}
        )
    if results:
        meta['model-index'] = [{'name': facts.name, 'results': list(results.values())}]
    return meta


def _n(value: Any) -> str:
    """Integers with thousands separators, the rest as written."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f'{int(value):,}' if float(value).is_integer() and abs(value) >= 1000 else f'{value:g}'


def _size(nbytes: int) -> str:
    return f'{nbytes / 1e6:.2f} MB' if nbytes >= 1e5 else f'{nbytes / 1e3:.1f} kB'


def _train_sets(opt: dict) -> list[tuple[str, dict]]:
    return [
        (str(k), ds)
        for k, ds in (opt.get('datasets') or {}).items()
        if str(k).split('_')[0] == 'train' and isinstance(ds, dict)
    ]


def _world_size(facts: CardFacts) -> int:
    return facts.progress.world_size or 1


def _batch_per_process(sets, world: int) -> int | None:
    """The train set's ``batch_size_per_gpu``, else its ``total_batch_size`` / processes (as the dataset sets it)."""
    for _, ds in sets:
        if ds.get('batch_size_per_gpu'):
            return ds['batch_size_per_gpu']
        if isinstance(ds.get('total_batch_size'), int) and ds['total_batch_size'] % world == 0:
            return ds['total_batch_size'] // world
    return None


def architecture_section(facts: CardFacts) -> list[str]:
    net_yaml = yaml.safe_dump({'network_g': plain(facts.network_g)}, sort_keys=False, default_flow_style=None)
    lines = [
        '## Architecture',
        '',
        f"{facts.arch}, **{facts.parameters:,} parameters** (built from the run's `network_g` through "
        "BasicSR's `ARCH_REGISTRY`, as `gaussiansr_arch.load_model` builds it):",
        '',
        '```yaml',
        net_yaml.rstrip('\n'),
        '```',
        '',
    ]
    default_name, detail = default_model(facts.arch)
    differs = [c for c in facts.option_changes if c[2] is not None]
    if not differs and facts.default_parameters == facts.parameters:
        lines.append(f'This is {default_name} ({detail or f"{facts.arch} with its default options"}).')
    else:
        changed = ', '.join(f'`{k}: {json.dumps(plain(v))}` (default {json.dumps(plain(d))})' for k, v, d in differs)
        also = ', '.join(f'`{k}: {json.dumps(plain(v))}`' for k, v, d in facts.option_changes if d is None)
        text = f'Not {default_name}' + (f' ({detail})' if detail else '') + ':'
        if changed:
            text += f' {changed}'
        if also and facts.default_parameters != facts.parameters:
            text += f'{";" if changed else ""} also set {also}'
        if facts.default_parameters not in (None, facts.parameters):
            text += f'; {facts.parameters:,} parameters against {facts.default_parameters:,}'
        lines.append(text + '.')
    if facts.network_g.get('image_skip') not in (None, 'none'):
        lines += [
            '',
            f'`image_skip: {facts.network_g["image_skip"]}` (the decoder predicts a residual over an '
            'interpolation of the LR image) is an option added by gaussiansr_arch, not part of the paper.',
        ]
    return lines + ['']


def weights_section(facts: CardFacts) -> list[str]:
    w = facts.weights
    ema = (facts.opt.get('train') or {}).get('ema_decay') or 0
    which = {
        'params_ema': f'the EMA weights (`params_ema`, decay {ema})' if ema else 'the EMA weights (`params_ema`)',
        'params': 'the trained weights (`params`)',
    }.get(w.param_key, f'`{w.param_key}`')
    if w.iteration is not None:
        iteration = f'{w.iteration:,} (from {w.iteration_source})'
    else:
        iteration = f'unknown: {w.iteration_source}'
    fmt = 'safetensors' if is_safetensors(w.path) else 'PyTorch, loads with `torch.load(weights_only=True)`'
    return [
        '## Weights',
        '',
        '| | |',
        '|---|---|',
        f'| file | `{w.name}` ({fmt}) |',
        f'| size | {w.size:,} bytes ({_size(w.size)}) |',
        f'| sha256 | `{w.sha256}` |',
        f'| parameters | {which} |',
        f'| iteration | {iteration} |',
        f'| records `network_g` | {"yes: loads without a YAML" if w.records_network_g else "no: pass the YAML"} |',
        f'| made with | gaussiansr_arch {__version__}; run options `{os.path.basename(facts.run.options_file)}` |',
        '',
    ]


def training_section(facts: CardFacts) -> list[str]:
    opt, train = facts.opt, facts.opt.get('train') or {}
    lines = ['## Training', '', '### Data', '']
    sets = _train_sets(opt)
    if not sets:
        lines += ['The options file names no training set.', '']
    for key, ds in sets:
        get = {**TRAIN_DEFAULTS, **ds}.get
        lr = get('lr_size')
        smin, smax = get('scale_min'), get('scale_max')
        per = 'per batch' if ds.get('batch_scale') else 'per sample'
        aug = [
            n for k, n in (('use_hflip', 'horizontal flips'), ('use_rot', 'vertical flips + transposes')) if ds.get(k)
        ]
        backend = (ds.get('io_backend') or {}).get('type', 'disk')
        lines += [
            f'- **{ds.get("name", key)}** (`{ds.get("type", "?")}`): `{ds.get("dataroot_gt", "?")}` ({backend})'
            + (
                f', repeated x{ds["dataset_enlarge_ratio"]} per epoch'
                if ds.get('dataset_enlarge_ratio', 1) != 1
                else ''
            ),
            f'  - LR patches {lr}x{lr} from HR crops of round({lr} s) pixels, s ~ U({_n(smin)}, {_n(smax)}) {per}',
            f'  - {_n(get("sample_q"))} random HR query pixels per patch'
            if get('sample_q') is not None
            else '  - every HR pixel of the crop queried',
            f'  - LR made by {DEGRADATIONS.get(get("lr_degradation"), get("lr_degradation"))}'
            + (f'; augmentation: {", ".join(aug)}' if aug else '; no augmentation'),
        ]
    batch = _batch_per_process(sets, _world_size(facts))
    world = _world_size(facts)
    optim = dict(train.get('optim_g') or {})
    sched = dict(train.get('scheduler') or {})
    pixel = train.get('pixel_opt') or {}
    total = train.get('total_iter')
    trained = facts.weights.iteration
    rows = [
        ('iterations', f'{_n(total)} planned' + (f'; these weights: {_n(trained)}' if trained is not None else '')),
        (
            'batch',
            f'{batch} per process x {world} process{"es" if world > 1 else ""} = {batch * world}'
            if isinstance(batch, int)
            else '?',
        ),
        (
            'optimiser',
            f'{optim.pop("type", "?")}, lr {_n(optim.pop("lr", "?"))}'
            + ''.join(f', {k} {json.dumps(plain(v))}' for k, v in optim.items()),
        ),
        (
            'lr schedule',
            f'{sched.pop("type", "none")}' + ''.join(f', {k} {json.dumps(plain(v))}' for k, v in sched.items()),
        ),
        ('warm-up iterations', _n(train['warmup_iter']) if (train.get('warmup_iter') or -1) > 0 else 'none'),
        ('loss', f'{pixel.get("type", "?")} (weight {_n(pixel.get("loss_weight", 1))})' if pixel else 'none'),
        ('EMA decay', _n(train.get('ema_decay') or 0) if train.get('ema_decay') else 'off'),
        ('gradient clipping', f'max norm {_n(train["grad_clip"])}' if train.get('grad_clip') else 'off'),
        ('mixed precision (`train.amp`)', train.get('amp') or 'off (fp32)'),
        ('`torch.compile`', 'on' if train.get('compile') else 'off'),
        ('seed', _n(opt.get('manual_seed', 'none'))),
    ]
    lines += ['', '### Schedule', '', '| | |', '|---|---|', *(f'| {k} | {v} |' for k, v in rows), '']
    return lines


def validation_section(facts: CardFacts) -> list[str]:
    lines = ['## Validation', '']
    if not facts.rows:
        return [*lines, 'The training log holds no validation: this card gives no quality figure.', '']
    it = facts.weights.iteration
    lines += [
        "Validation during training on the run's validation sets, as BasicSR logged it (`train_*.log`)"
        + ('; BasicSR validates the EMA weights' if (facts.opt.get('train') or {}).get('ema_decay') else '')
        + '. "best" follows each metric\'s direction (higher is better unless the YAML says `better: lower`).',
        '',
        f'| dataset | scale | metric | these weights (iteration {_n(it) if it is not None else "?"}) '
        '| last (iteration) | best (iteration) |',
        '|---|---|---|---|---|---|',
    ]
    for row in facts.rows:
        metric = metric_label(row.metric) + (f' ({row.protocol})' if row.protocol else '')
        scale = f'x{_n(row.scale)}' if row.scale is not None else '?'
        here = f'{row.at_weights:.4f}' if row.at_weights is not None else 'not validated'
        lines.append(
            f'| {row.dataset} | {scale} | {metric} | {here} | {row.last:.4f} ({row.last_iter:,}) '
            f'| {row.best:.4f} ({row.best_iter:,}) |'
        )
    return [*lines, '']


def _mentions_div2k(opt: dict) -> bool:
    """A training set named DIV2K (its name, not its path: the demo's photos sit in a DIV2K-like folder)."""
    return any('div2k' in str(ds.get('name', '')).lower() for _, ds in _train_sets(opt))


def reproduce_section(facts: CardFacts) -> list[str]:
    yml = os.path.basename(facts.run.options_file)
    world = _world_size(facts)
    if world > 1:
        train_cmd = f'torchrun --nproc_per_node={world} -m gaussiansr_arch.train -opt {yml} --launcher pytorch'
    else:
        train_cmd = f'gaussiansr-train -opt {yml}'
    lines = [
        '## Reproduce',
        '',
        f"`{yml}` is the options file of the run (BasicSR's copy, published with this card). "
        'Install gaussiansr_arch (its README: torch + torchvision, then `pip install --no-build-isolation '
        'basicsr==1.4.2`, then `pip install -e .` in a checkout), put the data where the `dataroot_*` '
        'paths of the YAML point, then:',
        '',
        '```bash',
    ]
    if _mentions_div2k(facts.opt):
        lines.append('gaussiansr-prepare-div2k --help   # DIV2K -> sub-images -> LMDB, at the paths the YAML names')
    lines += [train_cmd, f'{train_cmd} --auto_resume   # continue after an interruption', '```', '']
    if facts.run.command:
        lines += [f'The run was started with `{facts.run.command}`.', '']
    return lines


def usage_section(facts: CardFacts) -> list[str]:
    w = facts.weights.name
    yml = os.path.basename(facts.run.options_file)
    opt_arg = '' if facts.weights.records_network_g else f' --opt {yml}'
    if facts.weights.records_network_g:
        load = f"model = gaussiansr_arch.load_model('{w}', device='cpu')  # 'cuda' on a GPU"
        imports = 'import numpy as np, torch, gaussiansr_arch  # import gaussiansr_arch before basicsr'
    else:
        load = f"model = gaussiansr_arch.load_model('{w}', network_g=yaml.safe_load(open('{yml}'))['network_g'])"
        imports = 'import numpy as np, torch, yaml, gaussiansr_arch  # import gaussiansr_arch before basicsr'
    lines = [
        '## Use',
        '',
        'Any scale or output size from the one model (`gaussiansr-upscale --help` for tiling, precision and folders):',
        '',
        '```bash',
        f'gaussiansr-upscale photo.png --weights {w}{opt_arg} --scale 3.7 -o out/',
        f'gaussiansr-upscale photo.png --weights {w}{opt_arg} --size 1080x1920 -o out/',
        '```',
        '',
        'From Python:',
        '',
        '```python',
        imports,
        'from PIL import Image',
        '',
        load,
        "lr = torch.from_numpy(np.array(Image.open('photo.png').convert('RGB'))).permute(2, 0, 1)[None].float() / 255",
        'sr = model.upscale(lr, scale=3.7)  # or size=(H, W)',
        "Image.fromarray((sr[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()).save('photo_sr.png')",
        '```',
        '',
    ]
    if not facts.weights.records_network_g:
        lines += [
            f'`{w}` records no `network_g`: `gaussiansr-convert-weights {w} model.safetensors --opt {yml}` '
            'writes weights that load alone.',
            '',
        ]
    elif not is_safetensors(w):
        lines += [
            f'`gaussiansr-convert-weights {w} model.safetensors` gives the same parameters as `.safetensors` '
            '(no pickle), which loads the same way.',
            '',
        ]
    return lines


def limitations_section(facts: CardFacts) -> list[str]:
    opt, train = facts.opt, facts.opt.get('train') or {}
    items = []
    it, total = facts.weights.iteration, train.get('total_iter')
    sets = _train_sets(opt)
    batch = _batch_per_process(sets, _world_size(facts))
    lr_size = next((ds.get('lr_size', TRAIN_DEFAULTS['lr_size']) for _, ds in sets), None)
    method = get_method(facts.arch)
    reference = method.schedule if method is not None else None
    if it is None:
        reached = facts.progress.last_iter
        text = 'The iteration of these weights is unknown'
        text += f"; the run's logs reach iteration {reached:,}." if reached is not None else '.'
    else:
        text = f'Trained for {it:,} iterations'
        if isinstance(total, (int, float)) and it < total:
            text += f' of the {int(total):,} its options planned'
        if reference is not None:
            share = 100.0 * it / reference.iterations
            text += (
                f'. {reference.source[0].upper()}{reference.source[1:]} trains {reference.iterations:,} iterations '
                f'(batch {reference.batch} of {reference.lr_size}x{reference.lr_size} LR patches): '
            )
            if it >= reference.iterations:
                text += 'this run covers that length'
            else:
                text += f'this is {share:.2g} % of that schedule, so do not expect the published figures'
            if batch is not None and (batch * _world_size(facts) != reference.batch or lr_size != reference.lr_size):
                text += f' (and its batch is {batch * _world_size(facts)} of {lr_size}x{lr_size})'
            text += '.'
        else:
            text += f'; no reference schedule is recorded for {facts.arch} in this tool.'
    items.append(text)
    differs = [c for c in facts.option_changes if c[2] is not None]
    if differs or (facts.default_parameters is not None and facts.default_parameters != facts.parameters):
        default_name = default_model(facts.arch)[0]
        items.append(f"The arch is not {default_name} (see Architecture): its figures are not that model's.")
    for _, ds in sets[:1]:
        get = {**TRAIN_DEFAULTS, **ds}.get
        degradation = DEGRADATIONS.get(get('lr_degradation'), get('lr_degradation'))
        items.append(
            f'Trained on LR images made by {degradation} downscaling of clean HR images: photos with noise, blur, '
            'compression or other camera degradations are outside what it learnt.'
        )
        items.append(
            f'Trained at scales {_n(get("scale_min"))} to {_n(get("scale_max"))}: larger factors are extrapolation, '
            'and only the validated scales above are measured.'
        )
    if facts.rows:
        items.append(
            "The figures come from the validations during training on the run's own validation sets, not from a "
            'benchmark evaluation; `gaussiansr-test` with the options in `options/test/` (Set5 ... Urban100, '
            'DIV2K-val) measures those.'
        )
        val = opt.get('val') or {}
        print_freq = (opt.get('logger') or {}).get('print_freq')
        val_freq = val.get('val_freq')
        if isinstance(print_freq, (int, float)) and isinstance(val_freq, (int, float)) and val_freq % print_freq:
            items.append(
                f'`val_freq` {_n(val_freq)} is not a multiple of `print_freq` {_n(print_freq)}: the iteration '
                'of each validation is taken from the last training line logged before it, so it may be early.'
            )
    return ['## Limitations', '', *(f'- {item}' for item in items), '']


def render_card(facts: CardFacts) -> str:
    """The whole card: front matter, then the sections."""
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True, default_flow_style=False)
    it = facts.weights.iteration
    summary = (
        f'{facts.arch} for arbitrary-scale image super-resolution (one model upscales to any scale or output '
        f'size), trained with gaussiansr_arch, a BasicSR plugin: `{facts.weights.name}`'
        + (f', iteration {it:,}' if it is not None else '')
        + f' of the run `{facts.opt.get("name", facts.name)}`. Generated by `{PROG}` from the run folder.'
    )
    sections = [
        f'# {facts.name}',
        '',
        summary,
        '',
        *architecture_section(facts),
        *weights_section(facts),
        *training_section(facts),
        *validation_section(facts),
        *reproduce_section(facts),
        *usage_section(facts),
        *limitations_section(facts),
    ]
    return f'---\n{meta}---\n\n' + '\n'.join(sections).rstrip('\n') + '\n'


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-model-card``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Write a model card (README.md with Hugging Face front matter) for a trained BasicSR run: arch and '
            "parameter count, the weights (sha256, size, iteration), training data and schedule from the run's "
            'YAML, the validation table from its log, commands to reproduce and to use it, and its limitations.'
        ),
    )
    parser.add_argument('run_dir', metavar='RUN_DIR', help='the run folder, experiments/<name>')
    parser.add_argument('-o', '--output', help=f'card to write (default: RUN_DIR/{CARD_NAME})')
    parser.add_argument(
        '--weights',
        help='the weights file the card describes (default: the latest models/net_g_*; .safetensors wins over .pth)',
    )
    parser.add_argument('--name', help="model name (default: the run's name)")
    parser.add_argument('--license', default=DEFAULT_LICENSE, help='license id of the front matter')
    parser.add_argument(
        '--dataset-id',
        action='append',
        default=[],
        metavar='ID',
        help='Hugging Face dataset id of the training data, for the front matter (repeatable)',
    )
    parser.add_argument('--force', action='store_true', help='overwrite the output if it exists')
    return parser


def make_card(args: argparse.Namespace) -> dict:
    """Check the output, gather the facts, write the card; returns ``{'path', 'text', 'facts'}``."""
    output = args.output or os.path.join(args.run_dir, CARD_NAME)
    check_output_dir(os.path.dirname(output))
    check_output_free(output, args.force)
    facts = gather(args.run_dir, args.weights, args.license, args.dataset_id, args.name)
    text = render_card(facts)
    write_text_atomic(output, text)
    print(
        f'wrote {output}: {facts.arch}, {facts.parameters:,} parameters, {facts.weights.name}, '
        f'{len(facts.rows)} validation rows',
        file=sys.stderr,
    )
    return {'path': output, 'text': text, 'facts': facts}


run, main = Tool(build_parser, make_card).entry_points()

if __name__ == '__main__':
    sys.exit(main())
