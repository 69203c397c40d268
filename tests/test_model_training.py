"""ArbitraryScaleSRModel and the train/test entry points, end to end on the CPU.

A tiny GaussianSR is trained for a few iterations on a 3-image LMDB of scikit-image
photos through the real entry point (subprocess: ``tests/run_entry.py`` -> ``main``).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel, NonFiniteLossError
from gaussiansr_arch.utils import checkpoint
from gaussiansr_arch.utils.resume import find_latest_resume_state, load_training_state

import train_helpers as th

TINY_SPLAT = th.TINY_NET['splat_channels']


def assert_same(a, b, where: str = '') -> None:
    """Exact equality of nested dicts/lists/tensors (optimizer and scheduler states)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, Mapping):
        assert set(a) == set(b), f'{where}: keys {set(a) ^ set(b)}'
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    return th.make_tiny_data(tmp_path_factory.mktemp('data'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data) -> dict:
    """One 6-iteration run (checkpoints at 3 and 6, validation at 3, 6 and the end)."""
    root = tmp_path_factory.mktemp('run')
    yml = th.write_yaml(th.train_opt(data, 'tiny'), root / 'train.yml')
    th.run_entry('train', '-opt', yml, '--root', str(root))
    exp = root / 'experiments' / 'tiny'
    return {'root': root, 'yml': yml, 'exp': exp, 'log': th.read_logs(exp, 'train')}


def test_registries_populated_on_import():
    assert 'GaussianSR' in ARCH_REGISTRY
    assert 'ArbitraryScaleSRModel' in MODEL_REGISTRY
    assert {'ArbitraryScaleImageDataset', 'ArbitraryScalePairedDataset'} <= set(DATASET_REGISTRY.keys())


def test_training_logs_metrics_and_writes_checkpoints(trained):
    log, exp = trained['log'], trained['exp']
    assert 'End of training' in log
    assert 'l_pix:' in log and 'grad_norm:' in log
    psnr, ssim = th.metric_values(log, 'psnr'), th.metric_values(log, 'ssim')
    assert len(psnr) == 3 and len(ssim) == 3  # iter 3, iter 6, after training
    assert all(5 < float(v) < 60 for v in psnr) and all(0 < float(v) <= 1 for v in ssim)
    for it in (3, 6, 'latest'):
        ckpt = checkpoint.load_checkpoint_cpu(str(exp / 'models' / f'net_g_{it}.pth'))
        assert set(ckpt) == {'params', 'params_ema', 'network_g'}
        assert ckpt['network_g'] == th.TINY_NET
    # self-describing: the checkpoint alone rebuilds the run's arch (splat_channels 4, not a guess)
    from gaussiansr_arch import load_model

    net = load_model(str(exp / 'models' / 'net_g_latest.pth'))
    assert net.splat_channels == TINY_SPLAT and all(
        torch.equal(v, ckpt['params_ema'][k]) for k, v in net.state_dict().items()
    )
    for it in (3, 6):
        state = load_training_state(str(exp / 'training_states' / f'{it}.state'))
        assert state['iter'] == it and state['name'] == 'tiny'
    assert not list(exp.rglob('*.tmp'))


def test_test_entry_reproduces_validation_psnr(trained, data, tmp_path):
    model = str(trained['exp'] / 'models' / 'net_g_latest.pth')
    yml = th.write_yaml(th.test_opt(data, 'tiny_test', model), tmp_path / 'test.yml')
    # The installed console script, as a user runs it.
    script = Path(sys.executable).with_name('gaussiansr-test')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [str(script), '-opt', yml, '--root', str(tmp_path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = th.read_logs(tmp_path / 'results' / 'tiny_test', 'test')
    # The last validation of training used net_g_ema at the end = params_ema of net_g_latest.
    assert th.metric_values(log, 'psnr') == th.metric_values(trained['log'], 'psnr')[-1:]
    assert th.metric_values(log, 'ssim') == th.metric_values(trained['log'], 'ssim')[-1:]


def _check_resumed(dump: Path, exp: Path, it: int) -> None:
    """The model right after resuming holds exactly the iteration-``it`` files."""
    resumed = torch.load(dump / 'resumed.pt', weights_only=False)
    state = load_training_state(str(exp / 'training_states' / f'{it}.state'))
    nets = checkpoint.load_checkpoint_cpu(str(exp / 'models' / f'net_g_{it}.pth'))
    assert resumed['iter'] == it
    assert_same(resumed['net_g'], nets['params'], 'net_g')
    assert_same(resumed['net_g_ema'], nets['params_ema'], 'net_g_ema')
    assert_same(resumed['optimizers'], state['optimizers'], 'optimizers')
    assert_same(resumed['schedulers'], state['schedulers'], 'schedulers')


def test_resume_continues_from_saved_iteration(trained, tmp_path):
    root = tmp_path / 'root'
    shutil.copytree(trained['root'], root)
    exp, dump = root / 'experiments' / 'tiny', tmp_path / 'dump'
    state = exp / 'training_states' / '6.state'
    th.run_entry(
        'train',
        '-opt',
        trained['yml'],
        '--root',
        str(root),
        '--force_yml',
        'train:total_iter=9',
        f'path:resume_state={state}',
        f'test_dump_dir={dump}',
    )
    _check_resumed(dump, exp, 6)
    log = th.read_logs(exp, 'train')
    assert 'Resuming training from epoch: 0, iter: 6.' in log
    assert '[tiny..][epoch:  0, iter:       7,' in log and (exp / 'models' / 'net_g_9.pth').is_file()


def test_resume_rejects_state_of_other_experiment(trained, data, tmp_path):
    from gaussiansr_arch.train import main

    yml = th.write_yaml(th.train_opt(data, 'other'), tmp_path / 'other.yml')
    state = trained['exp'] / 'training_states' / '6.state'
    with pytest.raises(SystemExit) as err:
        main(['-opt', yml, '--root', str(tmp_path), '--force_yml', f'path:resume_state={state}'])
    message = str(err.value)
    assert "belongs to experiment 'tiny', not 'other'" in message and '\n' not in message


def test_unknown_arch_type_is_one_line_with_registered_names(data, tmp_path):
    from gaussiansr_arch.train import main

    opt = th.train_opt(data, 'bad_type')
    opt['network_g']['type'] = 'NoSuchNet'
    yml = th.write_yaml(opt, tmp_path / 'bad.yml')
    with pytest.raises(SystemExit) as err:
        main(['-opt', yml, '--root', str(tmp_path)])
    message = str(err.value)
    assert "unknown type 'NoSuchNet' in network_g" in message and 'GaussianSR' in message
    assert '\n' not in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo_identical_weights(data, tmp_path):
    dump = tmp_path / 'dump'
    yml = th.write_yaml(
        th.train_opt(data, 'ddp', total_iter=4, ckpt_freq=4, val_freq=4, dump_dir=str(dump)), tmp_path / 'ddp.yml'
    )
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nproc_per_node=2',
        f'--master_port={_free_port()}',
        str(th.RUN_ENTRY),
        'train',
        '-opt',
        yml,
        '--launcher',
        'pytorch',
        '--root',
        str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0 = torch.load(dump / 'final_rank0.pt', weights_only=True)
    rank1 = torch.load(dump / 'final_rank1.pt', weights_only=True)
    assert_same(rank0, rank1, 'rank0 vs rank1')
    models = tmp_path / 'experiments' / 'ddp' / 'models'
    saved = checkpoint.load_checkpoint_cpu(str(models / 'net_g_latest.pth'))
    assert_same(saved['params'], rank1, 'saved vs rank1')
    assert 'World size (gpu number): 2' in th.read_logs(tmp_path / 'experiments' / 'ddp', 'train')


def test_sigkill_then_auto_resume_continues_exactly(data, tmp_path):
    root, dump = tmp_path / 'root', tmp_path / 'dump'
    opt = th.train_opt(
        data, 'killed', total_iter=100000, ckpt_freq=2, val_freq=10**9, model_type='ArbitraryScaleSRModel'
    )
    yml = th.write_yaml(opt, tmp_path / 'killed.yml')
    exp = root / 'experiments' / 'killed'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # The real module entry point; only the resumed run needs the test hooks.
    proc = subprocess.Popen(
        [sys.executable, '-m', 'gaussiansr_arch.train', '-opt', yml, '--root', str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 90
        while find_latest_resume_state(str(exp / 'training_states'), str(exp / 'models')) is None:
            assert proc.poll() is None and time.time() < deadline, 'no checkpoint before the deadline'
            time.sleep(0.1)
        time.sleep(0.3)  # let it run on, so the kill may land anywhere, a save included
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path, _ = find_latest_resume_state(str(exp / 'training_states'), str(exp / 'models'))
    it = int(Path(path).stem)
    # A newer but truncated state (a kill during a plain torch.save) must be skipped.
    blob = (exp / 'training_states' / f'{it}.state').read_bytes()
    (exp / 'training_states' / f'{it + 1000}.state').write_bytes(blob[: len(blob) // 2])

    th.run_entry(
        'train',
        '-opt',
        yml,
        '--root',
        str(root),
        '--auto_resume',
        '--force_yml',
        f'train:total_iter={it + 2}',
        f'test_dump_dir={dump}',
        'model_type=HookedArbitraryScaleSRModel',
    )
    _check_resumed(dump, exp, it)
    log = th.read_logs(exp, 'train')
    assert f'Resuming training from epoch: 0, iter: {it}.' in log and 'End of training' in log
    assert (exp / 'models' / f'net_g_{it + 2}.pth').is_file()


# ----------------------------------------------------------------------------- in-process units
def _model(tmp_path: Path, **train) -> ArbitraryScaleSRModel:
    return ArbitraryScaleSRModel(th.unit_model_opt(tmp_path, **train))


def _batch(nan: bool = False) -> dict:
    gt = torch.rand(2, 64, 3)
    if nan:
        gt[0, 0, 0] = float('nan')
    return {
        'lq': torch.rand(2, 3, 12, 12),
        'gt': gt,
        'coord': torch.rand(2, 64, 2) * 2 - 1,
        'cell': torch.full((2, 64, 2), 2 / 24),
    }


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_non_finite_loss_policy_keeps_weights(tmp_path, policy):
    model = _model(tmp_path, nan_policy=policy)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    ema_before = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    model.feed_data(_batch(nan=True))
    if policy == 'raise':
        with pytest.raises(NonFiniteLossError, match='iteration 7'):
            model.optimize_parameters(7)
    else:
        model.optimize_parameters(7)
        assert model.get_current_log()['skipped_steps'] == 1
    assert_same(model.net_g.state_dict(), before, 'net_g')
    assert_same(model.net_g_ema.state_dict(), ema_before, 'net_g_ema')
    model.feed_data(_batch())  # a finite batch trains again
    model.optimize_parameters(8)
    after = model.net_g.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


def test_test_renders_gt_size_or_scale(tmp_path):
    model = _model(tmp_path)
    model.feed_data({'lq': torch.rand(1, 3, 10, 11), 'gt': torch.rand(1, 3, 23, 25)})
    model.test()
    assert model.output.shape == (1, 3, 23, 25)
    model.feed_data({'lq': torch.rand(1, 3, 10, 11), 'scale': torch.tensor([3.0])})
    del model.gt
    model.test()
    assert model.output.shape == (1, 3, 30, 33)


def test_atomic_save_crash_leaves_final_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_5.pth'
    checkpoint.atomic_torch_save({'params': torch.ones(3)}, str(path))
    original = path.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial')  # some bytes reach the disk, then the crash
        raise OSError('disk full')

    monkeypatch.setattr(checkpoint.torch, 'save', crashing_save)
    with pytest.raises(OSError, match='disk full'):
        checkpoint.atomic_torch_save({'params': torch.zeros(3)}, str(path))
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ['net_g_5.pth']  # no temporary file left behind

    model = _model(tmp_path)  # the model's checkpoint writers go through the same path
    with pytest.raises(OSError, match='disk full'):
        model.save_training_state(0, 5)
    with pytest.raises(OSError, match='disk full'):
        model.save_network(model.net_g, 'net_g', 5)
    assert path.read_bytes() == original and sorted(os.listdir(tmp_path)) == ['net_g_5.pth']


def test_sample_seed_runs_of_two_archs_see_identical_batches(data, tmp_path):
    """Two archs (different weight initialisation, so different global RNG use) with sample_seed:
    the batches BasicSR's trainer fed them are identical (logger.batch_digests)."""
    digests = {}
    for arch, network in (
        ('gaussiansr', dict(th.TINY_NET)),
        ('liif', {'type': 'LIIF', 'hidden': [16, 16], 'encoder_opt': {'num_feat': 8, 'num_block': 1}}),
    ):
        opt = th.train_opt(data, f'digest_{arch}', total_iter=4, ckpt_freq=4, val_freq=100)
        opt['model_type'] = 'ArbitraryScaleSRModel'
        opt['network_g'] = network
        opt['datasets']['train']['sample_seed'] = 3
        opt['logger']['batch_digests'] = True
        yml = th.write_yaml(opt, tmp_path / f'{arch}.yml')
        th.run_entry('train', '-opt', yml, '--root', str(tmp_path))
        digests[arch] = (tmp_path / 'experiments' / f'digest_{arch}' / 'batch_digests.txt').read_text().splitlines()
    assert [line.split()[0] for line in digests['gaussiansr']] == ['1', '2', '3', '4']
    assert len({line.split()[1] for line in digests['gaussiansr']}) == 4  # each batch differs
    assert digests['gaussiansr'] == digests['liif']
