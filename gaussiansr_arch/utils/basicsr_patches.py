"""Where basicsr 1.4.2 itself must behave differently, and why: the only patches of BasicSR.

:func:`install` (idempotent; run by the train/test entries) sets three module attributes, each where
BasicSR looks the name up, so library users calling ``basicsr.utils.dist_util.init_dist`` or BasicSR's
builders directly keep BasicSR's behaviour. Each patch works around an upstream defect with no hook
to override (it runs before any model exists); ``tests/test_basicsr_patches.py`` shows for each one
that BasicSR's own function misbehaves and the patched pipeline does not.

One more wrapper is installed by ``import gaussiansr_arch`` itself, so BasicSR's own entry gets it too:
``parse_options`` also resolves ``datasets.train.total_batch_size`` (:mod:`gaussiansr_arch.utils.total_batch`;
options without that key are untouched).

Everything else the entries add needs no patch: one-line errors are read off the exception
(:mod:`gaussiansr_arch.utils.entry_errors`), the options are checked before BasicSR reads them
(:mod:`gaussiansr_arch.utils.option_checks`), and network files are checked by
``ArbitraryScaleSRModel.load_network`` (a subclass override).
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gaussiansr_arch.utils import resume
from gaussiansr_arch.utils.data_stream import continue_data_stream

# 'module.attribute' -> BasicSR's own object, saved by install().
ORIGINALS: dict = {}


def init_dist(launcher: str, backend: str = 'nccl', **kwargs) -> None:
    """``basicsr.utils.dist_util.init_dist`` that also works without CUDA (gloo, torchrun env vars).

    With CUDA it is BasicSR's own.
    """
    if torch.cuda.is_available():
        return ORIGINALS['basicsr.utils.options.init_dist'](launcher, backend, **kwargs)
    if launcher != 'pytorch':
        raise ValueError(f"launcher '{launcher}' needs CUDA; on the CPU use torchrun with --launcher pytorch")
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')  # as BasicSR does, for dataloader workers
    # torchrun exports RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT: the default env:// init reads them.
    dist.init_process_group(backend='gloo', **kwargs)


def create_train_val_dataloader(opt: dict, logger):
    """``basicsr.train.create_train_val_dataloader``, then a resumed run's train loader continues its
    batch stream (:mod:`gaussiansr_arch.utils.data_stream`)."""
    result = ORIGINALS['basicsr.train.create_train_val_dataloader'](opt, logger)
    train_loader, train_sampler = result[0], result[1]
    continue_data_stream(opt, train_loader, train_sampler, logger)
    return result


def _patches() -> list:
    """(module, attribute, replacement) for every patch."""
    import basicsr.train
    import basicsr.utils.options

    return [
        # Upstream defect: basicsr/utils/dist_util.py _init_dist_pytorch() runs
        # torch.cuda.set_device(rank % torch.cuda.device_count()) -- ZeroDivisionError without a GPU --
        # and init_dist() defaults to the CUDA-only NCCL backend, so `--launcher pytorch` (torchrun)
        # cannot run on CPUs. parse_options (basicsr/utils/options.py) calls init_dist by this name.
        (basicsr.utils.options, 'init_dist', init_dist),
        # Upstream defects: basicsr/train.py load_resume_state() maps the state onto
        # torch.cuda.current_device() (fails without CUDA); with --auto_resume it looks for
        # experiments/<name>/training_states relative to the working directory, not the root_path
        # train_pipeline was given (resuming nothing from elsewhere), and takes the highest-numbered
        # .state even when a kill truncated it or its net_g_<iter>.pth is missing. The replacement
        # (utils/resume.py) also refuses a state of another experiment in one line.
        (basicsr.train, 'load_resume_state', resume.load_resume_state),
        # Upstream defect: basicsr/train.py train_pipeline() restarts the saved epoch's sampler from
        # its first batch on resume (and datasets' batch counters restart), so a resumed run trains on
        # other batches than the run it continues; the loop offers no hook between building the
        # loaders and iterating them, so the builder it calls by this name is wrapped.
        (basicsr.train, 'create_train_val_dataloader', create_train_val_dataloader),
    ]


def install() -> None:
    """Apply every patch (safe to call twice; the originals stay in :data:`ORIGINALS`)."""
    for module, name, replacement in _patches():
        ORIGINALS.setdefault(f'{module.__name__}.{name}', getattr(module, name))
        setattr(module, name, replacement)
