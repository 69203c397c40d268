"""Helpers for the training/entry-point tests: tiny data, YAML options, test hooks.

Importing this module registers ``HookedArbitraryScaleSRModel`` (a test-only subclass that
dumps what it resumed from and each rank's final weights into ``opt['test_dump_dir']``).
Subprocess runs go through ``tests/run_entry.py``, which imports this module and then calls
the real ``gaussiansr_arch.train.main`` / ``gaussiansr_arch.test.main``.
"""

import builtins
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import gaussiansr_arch  # noqa: F401  (shim + registration: must precede any basicsr import)

# isort: split
from basicsr.utils.registry import MODEL_REGISTRY

from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel
from gaussiansr_arch.utils.methods import get_method
from gaussiansr_arch.utils.option_files import read_options

HERE = Path(__file__).resolve().parent
RUN_ENTRY = HERE / 'run_entry.py'
OPTIONS = HERE / 'options'  # the YAML fixtures train_opt and unit_model_opt load

TINY_NET = get_method('GaussianSR').network(tiny=True)  # the descriptor's (archs/gaussiansr_arch.py)

TRAIN_DATASET = 'ArbitraryScaleImageDataset'
VAL_DATASET = 'ArbitraryScalePairedDataset'


if 'HookedArbitraryScaleSRModel' not in MODEL_REGISTRY:

    @MODEL_REGISTRY.register()
    class HookedArbitraryScaleSRModel(ArbitraryScaleSRModel):
        """ArbitraryScaleSRModel + test hooks writing into ``opt['test_dump_dir']``."""

        def _dump(self, name: str, obj) -> None:
            folder = self.opt.get('test_dump_dir')
            if folder:
                os.makedirs(folder, exist_ok=True)
                torch.save(obj, os.path.join(folder, name))

        def resume_training(self, resume_state: dict) -> None:
            super().resume_training(resume_state)
            # What the model holds right after resuming, to compare with the files on disk.
            self._dump(
                'resumed.pt',
                {
                    'iter': resume_state['iter'],
                    'net_g': self.get_bare_model(self.net_g).state_dict(),
                    'net_g_ema': self.net_g_ema.state_dict() if hasattr(self, 'net_g_ema') else None,
                    'optimizers': [o.state_dict() for o in self.optimizers],
                    'schedulers': [s.state_dict() for s in self.schedulers],
                },
            )

        def save(self, epoch: int, current_iter: int) -> None:
            super().save(epoch, current_iter)
            if current_iter == -1:  # end of training: every rank dumps its own weights
                self._dump(f'final_rank{self.opt["rank"]}.pt', self.get_bare_model(self.net_g).state_dict())


# ----------------------------------------------------------------------------- data
def _photos() -> list[np.ndarray]:
    import skimage.data

    return [
        skimage.data.astronaut()[100:228, 180:308],
        skimage.data.chelsea()[60:188, 120:248],
        skimage.data.coffee()[100:228, 200:328],
    ]  # 128x128 RGB crops


def make_tiny_data(root: Path) -> dict:
    """Write a 3-image training LMDB and a 2-image validation folder under ``root``."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    hr_dir, val_dir = root / 'hr', root / 'val'
    hr_dir.mkdir(parents=True)
    val_dir.mkdir()
    names = []
    for i, img in enumerate(_photos()):
        name = f'{i:04d}.png'
        cv2.imwrite(str(hr_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        names.append(name)
        if i < 2:  # 48x48 validation GT -> 24x24 LR at x2
            crop = np.ascontiguousarray(img[:48, :48])
            cv2.imwrite(str(val_dir / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    lmdb_path = root / 'train.lmdb'
    make_lmdb_from_imgs(str(hr_dir), str(lmdb_path), names, [n[:-4] for n in names], n_thread=1)
    return {'lmdb': str(lmdb_path), 'val': str(val_dir)}


# ----------------------------------------------------------------------------- options
def train_opt(
    data: dict,
    name: str,
    total_iter: int = 6,
    ckpt_freq: int = 3,
    val_freq: int = 3,
    model_type: str = 'HookedArbitraryScaleSRModel',
    dump_dir: str | None = None,
) -> dict:
    """A tiny GaussianSR training config (seconds on 2 CPU cores): ``tests/options/train_tiny.yml``."""
    opt = read_options(OPTIONS / 'train_tiny.yml')
    opt.update(name=name, model_type=model_type, test_dump_dir=dump_dir, network_g=dict(TINY_NET))
    opt['datasets']['train'].update(
        dataroot_gt=data['lmdb'], meta_info_file=os.path.join(data['lmdb'], 'meta_info.txt')
    )
    opt['datasets']['val_x2']['dataroot_gt'] = data['val']
    opt['train']['total_iter'] = total_iter
    opt['val']['val_freq'] = val_freq
    opt['logger']['save_checkpoint_freq'] = ckpt_freq
    return opt


def unit_model_opt(folder, network: dict | None = None, device_type: str = 'cpu', **train) -> dict:
    """Options of an in-process ArbitraryScaleSRModel (no dataset), checkpoints into ``folder``:
    ``tests/options/unit_model.yml``.

    ``train`` overrides the defaults (EMA 0.5, Adam 1e-3, MultiStepLR at 10).
    """
    opt = read_options(OPTIONS / 'unit_model.yml')
    opt.update(num_gpu=1 if device_type == 'cuda' else 0, network_g=dict(network or TINY_NET))
    opt['path'] = {'models': str(folder), 'training_states': str(folder)}
    opt['train'].update(train)
    return opt


def test_opt(data: dict, name: str, model_path: str) -> dict:
    """Test-entry config for the same validation set and a saved ``net_g_*.pth``."""
    opt = train_opt(data, name)
    return {
        'name': name,
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'network_g': dict(TINY_NET),
        'datasets': {'test_x2': dict(opt['datasets']['val_x2'])},
        'path': {'pretrain_network_g': model_path, 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': opt['val'],
    }


def write_yaml(opt: dict, path: Path) -> str:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


# ----------------------------------------------------------------------------- running
def entry_cmd(kind: str, *args: str) -> list[str]:
    """Command running ``gaussiansr_arch.<kind>.main(args)`` with the test hooks registered."""
    return [sys.executable, str(RUN_ENTRY), kind, *args]


def run_entry(kind: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(entry_cmd(kind, *args), capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        tail = f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
        raise AssertionError(f'{kind} failed ({proc.returncode}):\n{tail}')
    return proc


def read_logs(folder: Path, prefix: str) -> str:
    return '\n'.join(p.read_text() for p in sorted(folder.glob(f'{prefix}_*.log')))


def metric_values(log_text: str, metric: str) -> list[str]:
    """Every logged value of a validation metric, as printed (4 decimals)."""
    return re.findall(rf'# {metric}: (-?[0-9.]+|inf|nan)', log_text)


# ----------------------------------------------------------------------------- a disk that fills up
class FullDiskFile:
    """A file opened for writing on a disk that fills up: a write stores half its data, then fails (ENOSPC)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        data = bytes(data)
        self._f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def fill_disk(monkeypatch, module) -> None:
    """Every file that ``module`` opens for writing (through ``open``) becomes a :class:`FullDiskFile`."""

    def full_open(file, mode='r', *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115  (returned, closed by the caller)
        return FullDiskFile(f) if any(c in mode for c in 'wax+') else f

    monkeypatch.setattr(module, 'open', full_open, raising=False)


def fail_fsync(monkeypatch) -> None:
    """``os.fsync`` fails with ENOSPC (a full disk noticed when the data is flushed: figures, checkpoints)."""

    def full_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full_fsync)


def hidden_or_tmp(folder: Path) -> list[str]:
    """Temporary files (``.name.XXXX.tmp``) and unfinished builds (``*.tmp-<pid>``) anywhere under ``folder``."""
    return sorted(str(p) for p in Path(folder).rglob('*') if p.name.endswith('.tmp') or '.tmp-' in p.name)


def tool_error(capsys, run, argv, progress: bool = False) -> str:
    """The one ``error: ...`` line a tool's ``run(argv)`` prints when it exits with status 2.

    Asserts there is exactly one error line, last, and no traceback; ``progress``: tqdm lines may
    precede it (else stderr is that one line).
    """
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith('error: ')]
    assert len(errors) == 1 and err[-1] == errors[0] and 'Traceback' not in '\n'.join(err), err
    if not progress:
        assert len(err) == 1, err
    return errors[0]
