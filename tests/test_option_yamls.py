"""Training options live in YAML (issue 22 item 4): the demo, the test helpers, bench_train and soak each
load one file and override what the run sets. Their options are the values they wrote as dicts before
(the old functions, kept here verbatim as the reference), and the demo's file ships with the package."""

import argparse
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest

from gaussiansr_arch import demo

import train_helpers as th

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))
import bench_train  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
import soak  # noqa: E402


# ---------------------------------------------------------------------------- the dicts they wrote before
def old_demo_options(lmdb_path: str, val_dir: str, args: argparse.Namespace) -> dict:
    """BasicSR options of the demo run."""
    datasets = {
        'train': {
            'name': 'skimage-photos',
            'type': 'ArbitraryScaleImageDataset',
            'dataroot_gt': lmdb_path,
            'meta_info_file': osp.join(lmdb_path, 'meta_info.txt'),
            'io_backend': {'type': 'lmdb'},
            'lr_size': args.lr_size,
            'scale_min': 1,
            'scale_max': 4,
            'sample_q': args.sample_q,
            'use_hflip': True,
            'use_rot': True,
            'use_shuffle': True,
            'num_worker_per_gpu': args.workers,
            'batch_size_per_gpu': args.batch_size,
            'dataset_enlarge_ratio': 100,
            'prefetch_mode': None,
        }
    }
    for s in demo.VAL_SCALES:
        datasets[f'val_x{s:g}'.replace('.', 'p')] = demo.val_dataset(val_dir, s)
    return {
        'name': 'GaussianSR_demo',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 0,
        'manual_seed': args.seed,
        'datasets': datasets,
        'network_g': {'type': 'GaussianSR'},  # the paper's model (until issue 21: image_skip bilinear)
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,  # an EMA over a few hundred iterations would mostly average the random start
            'optim_g': {'type': 'Adam', 'lr': 4e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},  # 2e-4 until issue 21
            'scheduler': {
                'type': 'CosineAnnealingRestartLR',
                'periods': [args.iters],
                'restart_weights': [1],
                'eta_min': 1e-5,
            },
            'total_iter': args.iters,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {
            'val_freq': max(1, args.iters // 2),
            'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}},
        },
        'logger': {
            'print_freq': max(1, min(50, args.iters // 10)),
            'save_checkpoint_freq': max(1, args.iters // 2),
            'use_tb_logger': False,
            'wandb': {'project': None, 'resume_id': None},
        },
    }


def old_train_opt(
    data: dict,
    name: str,
    total_iter: int = 6,
    ckpt_freq: int = 3,
    val_freq: int = 3,
    model_type: str = 'HookedArbitraryScaleSRModel',
    dump_dir: str | None = None,
) -> dict:
    """A tiny GaussianSR training config (seconds on 2 CPU cores)."""
    return {
        'name': name,
        'model_type': model_type,
        'num_gpu': 0,
        'manual_seed': 0,
        'test_dump_dir': dump_dir,
        'network_g': dict(th.TINY_NET),
        'datasets': {
            'train': {
                'name': 'tiny',
                'type': 'ArbitraryScaleImageDataset',
                'dataroot_gt': data['lmdb'],
                'meta_info_file': os.path.join(data['lmdb'], 'meta_info.txt'),
                'io_backend': {'type': 'lmdb'},
                'lr_size': 16,
                'scale_min': 1.0,
                'scale_max': 2.0,
                'sample_q': 128,
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2,
                'dataset_enlarge_ratio': 20,
                'prefetch_mode': None,
            },
            'val_x2': {
                'name': 'val_x2',
                'type': 'ArbitraryScalePairedDataset',
                'dataroot_gt': data['val'],
                'scale': 2,
                'io_backend': {'type': 'disk'},
            },
        },
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'grad_clip': 1.0,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {
            'val_freq': val_freq,
            'save_img': False,
            'chunk_size': 512,
            'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': False},
                'ssim': {'type': 'calculate_ssim', 'crop_border': 2, 'test_y_channel': False},
            },
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': ckpt_freq, 'use_tb_logger': False},
    }


def old_unit_model_opt(folder, network: dict | None = None, device_type: str = 'cpu', **train) -> dict:
    """Options of an in-process ArbitraryScaleSRModel (no dataset), checkpoints into ``folder``.

    ``train`` overrides the defaults (EMA 0.5, Adam 1e-3, MultiStepLR at 10).
    """
    return {
        'name': 'unit',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 1 if device_type == 'cuda' else 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': True,
        'network_g': dict(network or th.TINY_NET),
        'path': {'models': str(folder), 'training_states': str(folder)},
        'train': {
            'ema_decay': 0.5,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            **train,
        },
        'val': {'chunk_size': 100},
    }


def old_bench_train_yaml(args, lmdb: str, model: str, name: str, amp: str = 'fp32') -> dict:
    return {
        'name': name,
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 1 if args.device.startswith('cuda') else 0,
        'manual_seed': 0,
        'network_g': bench_train.networks()[model],
        'datasets': {
            'train': {
                'name': 'skimage',
                'type': 'ArbitraryScaleImageDataset',
                'dataroot_gt': lmdb,
                'meta_info_file': os.path.join(lmdb, 'meta_info.txt'),
                'io_backend': {'type': 'lmdb'},
                'lr_size': args.lr_size,
                'scale_min': 1.0,
                'scale_max': args.scale_max,
                'sample_q': args.sample_q,
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': args.batch,
                'dataset_enlarge_ratio': 100,
                'prefetch_mode': None,
            }
        },
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
            'total_iter': args.iters,
            'warmup_iter': -1,
            'amp': None if amp == 'fp32' else amp,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 10**9, 'use_tb_logger': False},
    }


def old_soak_opt(data: dict, iters: int, ckpt_every: int, val_every: int) -> dict:
    """A tiny GaussianSR config: ~25k parameters, 16x16 LR patches, batch 2, 128 queries."""
    return {
        'name': 'soak',
        'model_type': 'SoakArbitraryScaleSRModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'network_g': {
            'type': 'GaussianSR',
            'encoder': 'edsr-baseline',
            'encoder_opt': {'num_feat': 16, 'num_block': 1},
            'splat_channels': 4,
            'bank_size': 16,
            'decoder_hidden': [32, 32],
        },
        'datasets': {
            'train': {
                'name': 'soak',
                'type': 'ArbitraryScaleImageDataset',
                'dataroot_gt': data['train'],
                'io_backend': {'type': 'disk'},
                'lr_size': 16,
                'scale_min': 1.0,
                'scale_max': 4.0,
                'sample_q': 128,
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2,
                'dataset_enlarge_ratio': 100,
                'prefetch_mode': None,
            },
            'val_x2': {
                'name': 'val_x2',
                'type': 'ArbitraryScalePairedDataset',
                'dataroot_gt': data['val'],
                'scale': 2,
                'io_backend': {'type': 'disk'},
            },
        },
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [iters // 2], 'gamma': 0.5},
            'total_iter': iters,
            'warmup_iter': -1,
            'grad_clip': 1.0,
        },
        'val': {
            'val_freq': val_every,
            'save_img': False,
            'chunk_size': 1024,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': False}},
        },
        'logger': {'print_freq': 100, 'save_checkpoint_freq': ckpt_every, 'use_tb_logger': False},
    }


# ---------------------------------------------------------------------------- the same values from YAML
DEMO_ARGS = [
    {'iters': 600, 'batch_size': 8, 'lr_size': 32, 'sample_q': 1024, 'workers': 1, 'seed': 0},  # the defaults
    {'iters': 1, 'batch_size': 2, 'lr_size': 16, 'sample_q': 64, 'workers': 0, 'seed': 0},
    {'iters': 37, 'batch_size': 3, 'lr_size': 24, 'sample_q': 500, 'workers': 2, 'seed': 2},
]


@pytest.mark.parametrize('values', DEMO_ARGS)
def test_demo_options_are_the_values_it_wrote(values):
    args = argparse.Namespace(**values)
    assert demo.train_options('/data/x.lmdb', '/data/val', args) == old_demo_options('/data/x.lmdb', '/data/val', args)


def test_demo_defaults_are_the_parser_defaults():
    """The command line's defaults are the file's values (the file documents a default run)."""
    args = demo.build_parser().parse_args([])
    assert {k: getattr(args, k) for k in DEMO_ARGS[0]} == DEMO_ARGS[0]
    assert demo.EXPERIMENT == 'GaussianSR_demo'


@pytest.mark.parametrize('kwargs', [{}, {'total_iter': 3, 'ckpt_freq': 1, 'val_freq': 2}, {'dump_dir': '/d'}])
def test_train_helper_options_are_the_values_they_wrote(kwargs):
    data = {'lmdb': '/t/train.lmdb', 'val': '/t/val'}
    assert th.train_opt(data, 'n', **kwargs) == old_train_opt(data, 'n', **kwargs)
    other = {'model_type': 'ArbitraryScaleSRModel', **kwargs}
    assert th.train_opt(data, 'm', **other) == old_train_opt(data, 'm', **other)


@pytest.mark.parametrize(
    'network, device, train',
    [(None, 'cpu', {}), ({'type': 'LIIF'}, 'cuda', {'ema_decay': 0}), (None, 'cpu', {'optim_g': {'type': 'SGD'}})],
)
def test_unit_model_options_are_the_values_they_wrote(tmp_path, network, device, train):
    new = th.unit_model_opt(tmp_path, network, device, **train)
    assert new == old_unit_model_opt(tmp_path, network, device, **train)


@pytest.mark.parametrize('model', ['gaussiansr', 'liif'])
@pytest.mark.parametrize('amp', ['fp32', 'bf16'])
def test_bench_train_options_are_the_values_it_wrote(model, amp):
    for argv in ([], ['--device', 'cuda', '--batch', '4', '--lr-size', '24', '--sample-q', '99', '--scale-max', '3']):
        args = bench_train.parse_args(['--iters', '5', *argv])
        new = bench_train.train_yaml(args, '/b/train.lmdb', model, 'run', amp)
        assert new == old_bench_train_yaml(args, '/b/train.lmdb', model, 'run', amp)


@pytest.mark.parametrize('iters, ckpt, val', [(2000, 500, 500), (300, 100, 50)])
def test_soak_options_are_the_values_it_wrote(iters, ckpt, val):
    data = {'train': '/s/train', 'val': '/s/val'}
    assert soak.soak_opt(data, iters, ckpt, val) == old_soak_opt(data, iters, ckpt, val)


def test_installed_package_finds_its_options(tmp_path):
    """A regular (non-editable) install: the package build_py copies (what a wheel holds) has the demo's
    options and the demo reads them from there."""
    build = tmp_path / 'lib'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    subprocess.run(
        [sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', str(build)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (build / 'gaussiansr_arch' / 'options' / demo.DEMO_OPTIONS).is_file()
    code = (
        f'import sys; sys.path.insert(0, {str(build)!r}); import gaussiansr_arch.demo as d; '
        'print(d.__file__); print(d.EXPERIMENT)'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert out == [str(build / 'gaussiansr_arch' / 'demo.py'), 'GaussianSR_demo']
