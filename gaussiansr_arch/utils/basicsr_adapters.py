"""CPU adapters for BasicSR 1.4.2's trainer, installed by our entry points.

BasicSR assumes CUDA in two places the trainer always passes through:

* ``basicsr.train.load_resume_state`` maps the state onto ``torch.cuda.current_device()``
  and, with ``--auto_resume``, takes the highest-numbered ``.state`` even if it is a
  truncated file left by a kill (and looks for it relative to the working directory);
* ``basicsr.utils.dist_util.init_dist`` divides by ``torch.cuda.device_count()`` and uses NCCL.

``install_cpu_adapters()`` swaps in the versions below (idempotent). With CUDA present,
``init_dist`` delegates to BasicSR's own.
"""

import os
from os import path as osp

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.utils import check_resume

from gaussiansr_arch.utils.checkpoint import load_checkpoint_cpu, try_load_checkpoint

_ORIGINALS: dict = {}


class ResumeStateError(RuntimeError):
    """A resume state that cannot be used (other experiment, missing network file ...)."""


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


def install_cpu_adapters() -> None:
    """Patch BasicSR's module attributes with the adapters above (safe to call twice)."""
    import basicsr.test  # noqa: F401  (make sure the modules to patch are loaded)
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options

    _ORIGINALS.setdefault('init_dist', basicsr.utils.dist_util.init_dist)
    _ORIGINALS.setdefault('load_resume_state', basicsr.train.load_resume_state)
    # parse_options looks init_dist up in basicsr.utils.options' namespace, the trainer
    # looks load_resume_state up in basicsr.train's: patch where they are looked up.
    basicsr.utils.dist_util.init_dist = init_dist
    basicsr.utils.options.init_dist = init_dist
    basicsr.train.load_resume_state = load_resume_state


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


def run_basicsr_entry(pipeline: str, argv: list[str] | None, prog: str) -> None:
    """Shared body of ``gaussiansr-train``/``gaussiansr-test``.

    Parses ``--root`` (where experiments/, tb_logger/, results/ go; default: the working
    directory), hands every other argument to BasicSR's own parser through ``sys.argv``,
    installs the CPU adapters and runs ``basicsr.<pipeline>``. Usage errors that BasicSR
    reports as tracebacks (unknown registry type, unusable resume state) exit with one line.

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
    install_cpu_adapters()
    run = basicsr.train.train_pipeline if pipeline == 'train' else basicsr.test.test_pipeline
    saved_argv = sys.argv
    sys.argv = [prog, *rest]
    try:
        run(root)
    except ResumeStateError as err:
        raise SystemExit(f'{prog}: error: {err}') from None
    except KeyError as err:
        message = unknown_type_message(err)
        if message is None:
            raise
        raise SystemExit(f'{prog}: error: {message}') from None
    finally:
        sys.argv = saved_argv
