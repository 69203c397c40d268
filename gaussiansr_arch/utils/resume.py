"""Resume states: find the newest usable ``<iter>.state``, load one for the trainer on the CPU.

:func:`load_resume_state` is what the trainer runs in place of ``basicsr.train.load_resume_state``
(installed by :mod:`gaussiansr_arch.utils.basicsr_patches`, which says why).
"""

import os
from os import path as osp

from basicsr.utils import check_resume

from gaussiansr_arch.utils.checkpoint import load_checkpoint_cpu, try_load_checkpoint
from gaussiansr_arch.utils.entry_errors import EntryError


class ResumeStateError(EntryError):
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
    """The trainer's resume state, as ``basicsr.train.load_resume_state`` but on the CPU and crash-safe.

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


def load_training_state(path: str) -> dict:
    """Load a ``.state`` on the CPU (helper for tools and tests)."""
    return load_checkpoint_cpu(path)
