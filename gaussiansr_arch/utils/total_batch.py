"""``datasets.train.total_batch_size``: the batch of one optimizer step, whatever the process count.

BasicSR's ``batch_size_per_gpu`` is per process (per GPU under DataParallel), so the batch of a step is
``batch_size_per_gpu x processes``: the paper's 16 becomes 64 under ``torchrun --nproc_per_node=4``.
The paper YAMLs give ``total_batch_size: 16`` instead, resolved when BasicSR parses the options:

* :func:`install` (run by ``import gaussiansr_arch``, so by BasicSR's own ``python -m basicsr.train``
  too) wraps BasicSR's ``parse_options``: after it (world size, ``num_gpu`` and ``--force_yml`` known),
  :func:`resolve_total_batch` sets ``batch_size_per_gpu = total_batch_size / (processes x DataParallel
  GPUs)``. Options without ``total_batch_size`` are left exactly as BasicSR parses them. The train set
  and its dataloader cannot do this: BasicSR hands the dataset a deep copy of its options and reads
  ``batch_size_per_gpu`` from its own. A total the processes do not divide stops with one line.
* An explicit ``batch_size_per_gpu`` (in the YAML, or ``--force_yml datasets:train:batch_size_per_gpu=N``)
  wins, as in plain BasicSR; :func:`check_total_batch` (the model's constructor, once the log file
  exists) then warns that the total is not applied, and logs the effective total batch of every run.
"""

from basicsr.utils import get_root_logger

from gaussiansr_arch.utils.entry_errors import EntryError

KEY = 'total_batch_size'

# 'module.parse_options' -> BasicSR's own function, saved by install().
ORIGINALS: dict = {}


class TotalBatchError(EntryError):
    """A ``total_batch_size`` that is not a positive integer or that the processes do not divide."""


def _split(opt: dict) -> tuple[int, int]:
    """(processes, GPUs per process under BasicSR's DataParallel) of a parsed options dict."""
    if opt.get('dist'):
        return int(opt.get('world_size', 1)), 1
    # BasicSR's build_dataloader without a launcher: batch_size_per_gpu x num_gpu in the one process
    return 1, max(1, int(opt.get('num_gpu') or 0))


def _describe(per_gpu: int, processes: int, data_parallel: int) -> str:
    if data_parallel > 1:
        return f'batch_size_per_gpu {per_gpu} x {data_parallel} GPUs (DataParallel)'
    return f'batch_size_per_gpu {per_gpu} x {processes} process{"es" if processes > 1 else ""}'


def resolve_total_batch(opt: dict) -> None:
    """Set ``datasets.train.batch_size_per_gpu`` from ``total_batch_size`` (in place; no-op without it).

    Args:
        opt (dict): Options as BasicSR's ``parse_options`` returns them (``dist``, ``world_size``,
            ``num_gpu`` resolved).
    """
    train_set = (opt.get('datasets') or {}).get('train')
    if not isinstance(train_set, dict) or train_set.get(KEY) is None:
        return
    total = train_set[KEY]
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise TotalBatchError(f'datasets.train.{KEY} must be a positive integer, got {total!r}')
    if train_set.get('batch_size_per_gpu') is not None:
        return  # an explicit batch_size_per_gpu wins (check_total_batch logs it)
    processes, data_parallel = _split(opt)
    share = processes * data_parallel
    if total % share:
        what = f'{data_parallel} GPUs (DataParallel)' if data_parallel > 1 else f'{processes} processes'
        raise TotalBatchError(
            f'datasets.train.{KEY} {total} cannot be split over {what}: use a number of GPUs/processes '
            f'that divides {total} (torchrun --nproc_per_node=N), or set datasets.train.batch_size_per_gpu '
            f'(the total is then batch_size_per_gpu x {share})'
        )
    train_set['batch_size_per_gpu'] = total // share


def check_total_batch(opt: dict) -> int | None:
    """Log the effective total batch of a training run, and a warning where it is not ``total_batch_size``.

    Args:
        opt (dict): The whole options, before the model changes ``num_gpu`` (BasicSR's dataloader
            multiplied by the YAML's).

    Returns:
        int | None: The total batch (None outside training or without ``batch_size_per_gpu``).
    """
    train_set = (opt.get('datasets') or {}).get('train')
    if not opt.get('is_train') or not isinstance(train_set, dict) or train_set.get('batch_size_per_gpu') is None:
        return None
    per_gpu = int(train_set['batch_size_per_gpu'])
    processes, data_parallel = _split(opt)
    effective = per_gpu * processes * data_parallel
    logger = get_root_logger()
    logger.info(f'Total batch per iteration: {effective} ({_describe(per_gpu, processes, data_parallel)})')
    wanted = train_set.get(KEY)
    if wanted is not None and wanted != effective:
        logger.warning(
            f'datasets.train.batch_size_per_gpu {per_gpu} given: it wins over {KEY} {wanted} '
            f'(total batch {effective}, not {wanted})'
        )
    return effective


def parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options``, then :func:`resolve_total_batch` when training."""
    opt, args = ORIGINALS['basicsr.utils.options.parse_options'](root_path, is_train)
    if is_train:
        resolve_total_batch(opt)
    return opt, args


def install() -> None:
    """Put :func:`parse_options` where BasicSR looks it up (idempotent).

    ``basicsr.utils.options`` (read when ``python -m basicsr.train`` runs ``train.py`` as ``__main__``),
    and the names ``basicsr/train.py`` and ``basicsr/test.py`` imported from it.
    """
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options

    ORIGINALS.setdefault('basicsr.utils.options.parse_options', basicsr.utils.options.parse_options)
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        module.parse_options = parse_options
