"""Two-process CPU DDP (torchrun, gloo) through the train entry: per-step agreement and resume.

tests/test_model_training.py checks identical weights at the end of a run; here every step is
recorded (tests/ddp_hooks.py) to check that ranks see different data but hold identical weights
after each step, share the per-batch scale with ``batch_scale``, validate on rank 0 only, and
resume (``--auto_resume``) from the same state.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gaussiansr_arch.utils import checkpoint

import train_helpers as th

HOOKS = Path(__file__).resolve().parent / 'ddp_hooks.py'


def _torchrun(yml: str, root: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nproc_per_node=2',
        f'--master_port={port}',
        str(HOOKS),
        'train',
        '-opt',
        yml,
        '--launcher',
        'pytorch',
        '--root',
        str(root),
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0 or not check, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _step(dump: Path, rank: int, it: int) -> dict:
    return torch.load(dump / f'step_rank{rank}_iter{it}.pt', weights_only=True)


def _assert_same_weights(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f'{where}: {k} differs'


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    return th.make_tiny_data(tmp_path_factory.mktemp('data'))


def test_ddp_every_step_and_resume(data, tmp_path):
    root, dump = tmp_path / 'root', tmp_path / 'dump'
    opt = th.train_opt(
        data,
        'ddp_steps',
        total_iter=4,
        ckpt_freq=2,
        val_freq=2,
        model_type='DDPHookedArbitraryScaleSRModel',
        dump_dir=str(dump),
    )
    opt['datasets']['train'].update(batch_scale=True, scale_max=4.0)
    yml = th.write_yaml(opt, tmp_path / 'ddp.yml')
    _torchrun(yml, root)

    scales = []
    for it in range(1, 5):
        s0, s1 = _step(dump, 0, it), _step(dump, 1, it)
        _assert_same_weights(s0['net_g'], s1['net_g'], f'iter {it}')
        assert s0['lq_sum'] != s1['lq_sum'], f'iter {it}: both ranks got the same batch'
        # batch_scale: one scale for the whole batch, the same on both ranks
        assert torch.equal(s0['scale'], s1['scale']) and bool((s0['scale'] == s0['scale'][0]).all())
        scales.append(float(s0['scale'][0]))
    assert len(set(scales)) > 1  # the scale does change from batch to batch
    validations = sorted(p.name for p in dump.glob('val_rank*'))
    # iterations 2 and 4, then BasicSR's final validation after the loop; rank 0 only
    assert validations[:2] == ['val_rank0_iter2', 'val_rank0_iter4'] and len(validations) == 3
    assert all(v.startswith('val_rank0_') for v in validations)
    exp = root / 'experiments' / 'ddp_steps'
    saved = checkpoint.load_checkpoint_cpu(str(exp / 'models' / 'net_g_4.pth'))['params']
    _assert_same_weights(saved, _step(dump, 0, 4)['net_g'], 'net_g_4.pth vs rank 0')

    # resume under DDP: both ranks start from iteration 4's files and stay in step
    _torchrun(yml, root, '--auto_resume', '--force_yml', 'train:total_iter=6')
    state = checkpoint.load_checkpoint_cpu(str(exp / 'training_states' / '4.state'))
    for rank in (0, 1):
        resumed = torch.load(dump / f'resumed_rank{rank}.pt', weights_only=True)
        assert resumed['iter'] == 4
        _assert_same_weights(resumed['net_g'], saved, f'rank {rank} resumed')
        assert resumed['optimizers'][0]['state'].keys() == state['optimizers'][0]['state'].keys()
        for key, value in state['optimizers'][0]['state'].items():
            for name in ('exp_avg', 'exp_avg_sq'):
                assert torch.equal(resumed['optimizers'][0]['state'][key][name], value[name]), (rank, key)
    for it in (5, 6):
        _assert_same_weights(_step(dump, 0, it)['net_g'], _step(dump, 1, it)['net_g'], f'resumed iter {it}')
    assert 'Resuming training from epoch: 0, iter: 4.' in th.read_logs(exp, 'train')


def test_ddp_total_batch_size_is_split_over_the_processes(data, tmp_path):
    """total_batch_size 4 on 2 processes: 2 samples per rank per step, and the log states the total of 4."""
    root, dump = tmp_path / 'root', tmp_path / 'dump'
    opt = th.train_opt(
        data, 'ddp_total', total_iter=1, ckpt_freq=1, val_freq=10, model_type='DDPHookedArbitraryScaleSRModel'
    )
    opt['test_dump_dir'] = str(dump)
    del opt['datasets']['train']['batch_size_per_gpu']
    opt['datasets']['train'].update(total_batch_size=4, batch_scale=True)
    _torchrun(th.write_yaml(opt, tmp_path / 'total.yml'), root)
    for rank in (0, 1):
        assert _step(dump, rank, 1)['scale'].shape == (2,), f'rank {rank}'
    log = th.read_logs(root / 'experiments' / 'ddp_total', 'train')
    assert 'Total batch per iteration: 4 (batch_size_per_gpu 2 x 2 processes)' in log
    assert 'Batch size per gpu: 2' in log and 'World size (gpu number): 2' in log  # BasicSR's own statistics

    # a total the processes do not divide: one line saying how to get it, before any training
    opt['name'], opt['datasets']['train']['total_batch_size'] = 'ddp_total_3', 3
    proc = _torchrun(th.write_yaml(opt, tmp_path / 'total3.yml'), root, check=False)
    expected = (
        'gaussiansr-train: error: datasets.train.total_batch_size 3 cannot be split over 2 processes: use a '
        'number of GPUs/processes that divides 3 (torchrun --nproc_per_node=N), or set '
        'datasets.train.batch_size_per_gpu (the total is then batch_size_per_gpu x 2)'
    )
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr[-3000:]
    assert 'total_batch.py' not in proc.stderr  # one line, not the traceback of the worker processes
    assert not (root / 'experiments' / 'ddp_total_3').exists()  # stopped while parsing the options
