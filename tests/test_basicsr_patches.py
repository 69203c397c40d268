"""The BasicSR patches (gaussiansr_arch/utils/basicsr_patches.py): for each, BasicSR's own function
misbehaves and the patched one does not; and what needs no patch (builders, load_network) is BasicSR's.

The pipeline-level checks are elsewhere: tests/test_ddp.py (torchrun on CPUs), tests/test_model_training.py
(SIGKILL + --auto_resume), tests/test_data_stream.py (a resumed run's batches), tests/test_reliability.py
(one-line errors through the entry).
"""

import socket
from pathlib import Path

import basicsr.archs
import basicsr.data
import basicsr.models
import basicsr.models.sr_model
import basicsr.test
import basicsr.train
import basicsr.utils.dist_util
import basicsr.utils.options
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel

from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel
from gaussiansr_arch.utils import basicsr_patches, resume
from gaussiansr_arch.utils.checkpoint import atomic_torch_save
from gaussiansr_arch.utils.entry_errors import CheckpointError, entry_error_message

import train_helpers as th

CUDA = torch.cuda.is_available()


@pytest.fixture(scope='module', autouse=True)
def installed():
    basicsr_patches.install()
    return basicsr_patches.ORIGINALS


def test_install_patches_three_names_where_basicsr_looks_them_up(installed):
    assert set(installed) == {
        'basicsr.utils.options.init_dist',
        'basicsr.train.load_resume_state',
        'basicsr.train.create_train_val_dataloader',
    }
    assert basicsr.utils.options.init_dist is basicsr_patches.init_dist
    assert basicsr.train.load_resume_state is resume.load_resume_state
    # its effect (a resumed run continues the batch stream) is shown in tests/test_data_stream.py
    assert basicsr.train.create_train_val_dataloader is basicsr_patches.create_train_val_dataloader
    assert installed['basicsr.train.create_train_val_dataloader'].__module__ == 'basicsr.train'
    basicsr_patches.install()  # idempotent: the originals stay BasicSR's
    assert installed['basicsr.utils.options.init_dist'] is basicsr.utils.dist_util.init_dist
    assert installed['basicsr.train.load_resume_state'].__module__ == 'basicsr.train'
    # No longer patched: the builders that run are BasicSR's, and so is BaseModel.load_network.
    for module in (basicsr.train, basicsr.test):
        assert module.build_dataset is basicsr.data.build_dataset and module.build_model is basicsr.models.build_model
    assert basicsr.models.sr_model.build_network is basicsr.archs.build_network
    assert BaseModel.load_network.__module__ == 'basicsr.models.base_model'


# ----------------------------------------------------------------------------- init_dist
@pytest.fixture
def torchrun_env(monkeypatch):
    """One process as torchrun would start it; spawn is not set for the rest of the test session."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for key, value in {
        'RANK': '0',
        'LOCAL_RANK': '0',
        'WORLD_SIZE': '1',
        'MASTER_ADDR': '127.0.0.1',
        'MASTER_PORT': str(port),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(mp, 'set_start_method', lambda *args, **kwargs: None)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.skipif(CUDA, reason='BasicSR initialises NCCL fine where CUDA is')
def test_basicsr_init_dist_fails_without_cuda(installed, torchrun_env):
    with pytest.raises(ZeroDivisionError):  # torch.cuda.set_device(rank % torch.cuda.device_count())
        installed['basicsr.utils.options.init_dist']('pytorch')
    assert not dist.is_initialized()


def test_launcher_pytorch_parses_options_on_this_machine(tmp_path, monkeypatch, torchrun_env):
    yml = tmp_path / 'x.yml'
    yml.write_text(yaml.safe_dump({'name': 'x', 'model_type': 'SRModel', 'num_gpu': 0, 'datasets': {}, 'path': {}}))
    monkeypatch.setattr('sys.argv', ['gaussiansr-test', '-opt', str(yml), '--launcher', 'pytorch'])
    opt, _ = basicsr.utils.options.parse_options(str(tmp_path), is_train=False)
    assert opt['dist'] and (opt['rank'], opt['world_size']) == (0, 1)
    assert dist.get_backend() == ('nccl' if CUDA else 'gloo')


def test_init_dist_on_cpu_refuses_other_launchers(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match="launcher 'slurm' needs CUDA; on the CPU use torchrun"):
        basicsr_patches.init_dist('slurm')


# ----------------------------------------------------------------------------- load_resume_state
def _experiment(root: Path) -> dict:
    """experiments/x with a complete iteration 2 and an iteration 4 whose .state a kill truncated."""
    exp = root / 'experiments' / 'x'
    states, models = exp / 'training_states', exp / 'models'
    for it in (2, 4):
        atomic_torch_save(
            {'epoch': 0, 'iter': it, 'name': 'x', 'optimizers': [], 'schedulers': []}, str(states / f'{it}.state')
        )
        atomic_torch_save({'params': {'w': torch.ones(2)}}, str(models / f'net_g_{it}.pth'))
    blob = (states / '4.state').read_bytes()
    (states / '4.state').write_bytes(blob[: len(blob) // 2])
    return {
        'name': 'x',
        'auto_resume': True,
        'network_g': dict(th.TINY_NET),
        'path': {
            'resume_state': None,
            'experiments_root': str(exp),
            'training_states': str(states),
            'models': str(models),
        },
    }


def test_basicsr_auto_resume_looks_in_the_working_directory_and_takes_a_truncated_state(
    installed, tmp_path, monkeypatch
):
    original = installed['basicsr.train.load_resume_state']
    opt = _experiment(tmp_path / 'root')
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    assert original(opt) is None  # states under root_path are not even looked for: training restarts
    monkeypatch.chdir(tmp_path / 'root')
    with pytest.raises((RuntimeError, AssertionError)):  # no CUDA device, or (with one) the truncated file
        original(opt)
    assert opt['path']['resume_state'] == str(Path('experiments', 'x', 'training_states', '4.state'))


def test_auto_resume_takes_the_newest_complete_state_under_root_on_the_cpu(tmp_path, monkeypatch):
    opt = _experiment(tmp_path / 'root')
    monkeypatch.chdir(tmp_path)
    state = basicsr.train.load_resume_state(opt)  # what train_pipeline calls
    states, models = opt['path']['training_states'], opt['path']['models']
    assert state['iter'] == 2 and opt['path']['resume_state'] == str(Path(states, '2.state'))
    assert opt['path']['pretrain_network_g'] == str(Path(models, 'net_g_2.pth'))  # BasicSR's check_resume ran


@pytest.mark.skipif(CUDA, reason='BasicSR maps the state onto the current CUDA device fine where CUDA is')
def test_basicsr_resume_state_needs_cuda_ours_loads_on_the_cpu(installed, tmp_path):
    opt = _experiment(tmp_path)
    opt.update(auto_resume=False)
    opt['path']['resume_state'] = str(Path(opt['path']['training_states'], '2.state'))
    with pytest.raises((RuntimeError, AssertionError)):
        installed['basicsr.train.load_resume_state'](dict(opt, path=dict(opt['path'])))
    assert basicsr.train.load_resume_state(opt)['iter'] == 2
    with pytest.raises(resume.ResumeStateError, match="belongs to experiment 'x', not 'y'"):
        basicsr.train.load_resume_state(dict(opt, name='y'))


# ----------------------------------------------------------------------------- no patch: load_network
def _other_config_file(path: Path) -> str:
    opt = {k: v for k, v in th.TINY_NET.items() if k != 'type'}
    torch.save({'params': GaussianSR(**{**opt, 'decoder': 'mlp'}).state_dict()}, path)
    return str(path)


def test_load_network_override_names_the_file_in_one_line(tmp_path):
    model = ArbitraryScaleSRModel(
        {
            'name': 'x',
            'model_type': 'ArbitraryScaleSRModel',
            'num_gpu': 0,
            'dist': False,
            'rank': 0,
            'world_size': 1,
            'is_train': False,
            'network_g': dict(th.TINY_NET),
            'path': {},
        }
    )
    other = _other_config_file(tmp_path / 'mlp.pth')
    with pytest.raises(RuntimeError) as err:  # basicsr 1.4.2 BaseModel.load_network
        SRModel.load_network(model, model.net_g, other)
    assert '\n' in str(err.value) and other not in str(err.value)  # every key, one per line for big nets
    with pytest.raises(CheckpointError, match=rf'^network file {other} does not fit GaussianSR of the options'):
        model.load_network(model.net_g, other)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(Path(other).read_bytes()[:1000])
    with pytest.raises(RuntimeError) as err:
        SRModel.load_network(model, model.net_g, str(cut))
    assert str(cut) not in str(err.value)
    with pytest.raises(CheckpointError, match=rf'^network file {cut} cannot be loaded \(truncated'):
        model.load_network(model.net_g, str(cut))


# ----------------------------------------------------------------------------- no patch: the builders
def test_builder_errors_are_named_from_the_traceback():
    """BasicSR's unpatched builders raise; the entry names what the innermost one was building."""
    with pytest.raises(ValueError) as err:
        basicsr.data.build_dataset({'name': 'tiny', 'type': 'ArbitraryScaleImageDataset', 'phase': 'train'})
    assert entry_error_message(err.value) == (
        f"dataset 'tiny' (ArbitraryScaleImageDataset): {str(err.value).removeprefix('ArbitraryScaleImageDataset: ')}"
    )
    assert 'option dataroot_gt is required' in entry_error_message(err.value)
    with pytest.raises(TypeError) as err:
        basicsr.archs.build_network(dict(th.TINY_NET, num_feat=64))
    assert entry_error_message(err.value).startswith("network 'GaussianSR': ")
    opt = {
        'name': 'x',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': False,
        'path': {},
    }
    with pytest.raises(KeyError) as err:
        basicsr.models.build_model(opt)
    assert entry_error_message(err.value) == "model_type 'ArbitraryScaleSRModel': missing option 'network_g'"
    with pytest.raises(TypeError) as err:  # the network built inside the model: the innermost builder names it
        basicsr.models.build_model(dict(opt, network_g=dict(th.TINY_NET, num_feat=64)))
    assert entry_error_message(err.value).startswith("network 'GaussianSR': ")
    with pytest.raises(KeyError) as err:
        basicsr.archs.build_network({'type': 'NoSuchNet'})
    assert entry_error_message(err.value).startswith("unknown type 'NoSuchNet' in network_g (arch registry)")
    assert entry_error_message(ValueError('a bug outside any builder')) is None  # a traceback
