"""Reliability: every bad input a user can give fails with one line naming it, or works as documented.

Rows of docs/reliability.md. Images go through the user-facing paths (BasicSR's ``build_dataset``
and the ``gaussiansr-upscale`` console script), options and weight files through the real train
entry (``gaussiansr_arch.train.main``; in-process for speed, plus subprocesses checking stderr).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset

from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.data.arbitrary_scale_dataset import LmdbKeyError
from gaussiansr_arch.utils import checkpoint
from gaussiansr_arch.utils.image_io import ImageReadError
from gaussiansr_arch.utils.resume import find_latest_resume_state

import train_helpers as th

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
UPSCALE = str(Path(sys.executable).with_name('gaussiansr-upscale'))


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode('.png', img)[1].tobytes()


def _rgb_photo(h: int = 24, w: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bad_images() -> dict[str, bytes]:
    """Bad image files by row name: (file name, content)."""
    png = _png(_rgb_photo())
    jpg = cv2.imencode('.jpg', _rgb_photo())[1].tobytes()
    return {
        'zero_byte': ('zero.png', b''),
        'truncated_png': ('trunc.png', png[: len(png) // 2]),
        'truncated_jpeg': ('trunc.jpg', jpg[: len(jpg) // 2]),
        'not_an_image': ('notes.png', b'this is a text file, not a picture\n'),
    }


def _good_images() -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Unusual but valid images: (file name, array as written, expected RGB uint8 as read)."""
    rgb = _rgb_photo()
    gray = rgb[:, :, 0]
    bgra = np.dstack([rgb[:, :, ::-1], np.zeros_like(gray)])  # fully transparent
    deep = (rgb[:, :, ::-1].astype(np.uint16) * 257 + 100).astype(np.uint16)
    return {
        'grayscale': ('gray.png', gray, np.repeat(gray[:, :, None], 3, axis=2)),
        'rgba': ('rgba.png', bgra, rgb),  # alpha dropped, colours kept as stored
        '16bit': ('deep.png', deep, ((deep[:, :, ::-1].astype(np.uint32) + 128) // 257).astype(np.uint8)),
    }


def _paired(folder: Path, scale: float = 2) -> dict:
    return {
        'name': 'bad',
        'type': 'ArbitraryScalePairedDataset',
        'phase': 'val',
        'dataroot_gt': str(folder),
        'scale': scale,
        'io_backend': {'type': 'disk'},
    }


# ----------------------------------------------------------------------------- images: datasets
@pytest.mark.parametrize('row', sorted(_bad_images()))
def test_bad_image_fails_with_one_line_naming_file_in_dataset(tmp_path, row):
    name, content = _bad_images()[row]
    (tmp_path / name).write_bytes(content)
    ds = build_dataset(_paired(tmp_path))
    with pytest.raises(ImageReadError) as err:
        ds[0]
    message = str(err.value)
    assert str(tmp_path / name) in message and '\n' not in message


@pytest.mark.parametrize('row', sorted(_good_images()))
def test_gray_rgba_16bit_are_read_as_rgb8_by_dataset(tmp_path, row):
    name, written, expected = _good_images()[row]
    assert cv2.imwrite(str(tmp_path / name), written)
    sample = build_dataset(_paired(tmp_path, scale=1))[0]
    assert sample['gt'].shape == (3, 24, 20)
    np.testing.assert_array_equal((sample['gt'].numpy().transpose(1, 2, 0) * 255).round(), expected)


def test_one_pixel_image_fails_clearly_in_datasets(tmp_path):
    cv2.imwrite(str(tmp_path / 'dot.png'), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match=rf'{tmp_path}/dot.png.*too small for scale 2'):
        build_dataset(_paired(tmp_path))[0]
    train = {
        'name': 't',
        'type': 'ArbitraryScaleImageDataset',
        'phase': 'train',
        'dataroot_gt': str(tmp_path),
        'lr_size': 8,
        'scale_min': 1,
        'scale_max': 2,
        'sample_q': 16,
    }
    with pytest.raises(ValueError, match=rf'{tmp_path}/dot.png \(1x1\) is smaller than the'):
        build_dataset(train)[0]


# ----------------------------------------------------------------------------- images: gaussiansr-upscale
@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> str:
    """A self-describing tiny GaussianSR weights file (records its network_g)."""
    path = tmp_path_factory.mktemp('weights') / 'tiny.pth'
    net = GaussianSR(**{k: v for k, v in th.TINY_NET.items() if k != 'type'})
    torch.save({'params': net.state_dict(), 'network_g': dict(th.TINY_NET)}, path)
    return str(path)


def _upscale(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [UPSCALE, *args, '--quiet'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def test_upscale_cli_bad_and_unusual_images(tmp_path, weights):
    """One process per failing row and one for every image that must work, run concurrently."""
    failing = {}
    for row, (name, content) in _bad_images().items():
        (tmp_path / name).write_bytes(content)
        failing[row] = (
            str(tmp_path / name),
            _upscale(str(tmp_path / name), '--scale', '2', '--weights', weights, '-o', str(tmp_path / f'out_{row}')),
        )
    good = tmp_path / 'good'
    good.mkdir()
    for name, written, _ in _good_images().values():
        cv2.imwrite(str(good / name), written)
    cv2.imwrite(str(good / 'dot.png'), np.full((1, 1, 3), 200, np.uint8))
    ok = _upscale(str(good), '--scale', '4', '--weights', weights, '-o', str(tmp_path / 'out_good'))

    for row, (path, proc) in failing.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (row, err)
        # OpenCV's C++ logger may add its own '[ WARN:...]' line (truncated PNG): a known gap of
        # image_io, pinned by test_truncated_png_stderr_is_exactly_one_line below.
        lines = [line for line in err.strip().splitlines() if not line.startswith('[ WARN:')]
        assert len(lines) == 1 and path in lines[0] and lines[0].startswith('error: '), (row, err)
        assert not list((tmp_path / f'out_{row}').glob('*')) if (tmp_path / f'out_{row}').exists() else True
    _, err = ok.communicate(timeout=120)
    assert ok.returncode == 0, err
    for stem, shape in (('gray', (96, 80)), ('rgba', (96, 80)), ('deep', (96, 80)), ('dot', (4, 4))):
        out = cv2.imread(str(tmp_path / 'out_good' / f'{stem}_x4.png'), cv2.IMREAD_UNCHANGED)
        assert out is not None and out.shape == (*shape, 3) and out.dtype == np.uint8, stem


def test_truncated_png_stderr_is_exactly_one_line(tmp_path, weights):
    name, content = _bad_images()['truncated_png']
    (tmp_path / name).write_bytes(content)
    _, err = _upscale(str(tmp_path / name), '--scale', '2', '--weights', weights, '-o', str(tmp_path)).communicate(
        timeout=120
    )
    assert len(err.strip().splitlines()) == 1, err


def test_upscale_cli_over_pixel_limit(tmp_path, weights, capsys):
    from gaussiansr_arch.tools.upscale import main

    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), _rgb_photo(40, 40))
    with pytest.raises(SystemExit) as exc:
        main(
            [
                str(big),
                '--scale',
                '4',
                '--max-pixels',
                '10000',
                '--weights',
                weights,
                '-o',
                str(tmp_path / 'o'),
                '--quiet',
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and str(big) in err[0] and 'exceeds --max-pixels' in err[0]
    assert not (tmp_path / 'o').exists()


# ----------------------------------------------------------------------------- scales and sizes
@pytest.mark.parametrize(
    'flag,value',
    [
        ('--scale', '0'),
        ('--scale', '-2'),
        ('--scale', 'nan'),
        ('--scale', 'inf'),
        ('--scale', 'abc'),
        ('--scale', '0x10'),
        ('--scale', '1e9'),
        ('--size', '0x10'),
        ('--size', '-5x5'),
        ('--size', 'abc'),
        ('--size', '100000x100000'),
    ],
)
def test_upscale_cli_bad_scale_or_size_is_one_line(tmp_path, weights, capsys, flag, value):
    from gaussiansr_arch.tools.upscale import main

    img = tmp_path / 'img.png'
    cv2.imwrite(str(img), _rgb_photo(8, 8))
    with pytest.raises(SystemExit) as exc:
        main([str(img), f'{flag}={value}', '--weights', weights, '-o', str(tmp_path / 'out'), '--quiet'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    assert value.lstrip('-') in err[0] or 'exceeds --max-pixels' in err[0], err  # 1e9: names the image
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
    'kwargs,match',
    [
        ({'scale': 0}, 'finite number > 0'),
        ({'scale': -1.5}, 'finite number > 0'),
        ({'scale': float('nan')}, 'finite number > 0'),
        ({'scale': float('inf')}, 'finite number > 0'),
        ({'scale': 'abc'}, 'number > 0'),
        ({'scale': (0, 10)}, 'finite number > 0'),
        ({'scale': (2, 3, 4)}, 'pair'),
        ({'size': (0, 10)}, 'positive integers'),
        ({'size': (-1, 5)}, 'positive'),
        ({'size': (2.5, 3)}, 'positive integers'),
        ({'size': 'abc'}, 'positive integers'),
        ({'size': (4, 4), 'scale': 2}, 'exactly one'),
        ({}, 'exactly one'),
    ],
)
def test_arch_api_rejects_bad_scale_and_size(kwargs, match):
    net = GaussianSR(**{k: v for k, v in th.TINY_NET.items() if k != 'type'})
    with pytest.raises(ValueError, match=match):
        net.upscale(torch.rand(1, 3, 4, 4), **kwargs)


# ----------------------------------------------------------------------------- options through the train entry
@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    return th.make_tiny_data(tmp_path_factory.mktemp('data'))


def _opt(data: dict, **train_set) -> dict:
    opt = th.train_opt(data, 'rel', model_type='ArbitraryScaleSRModel')
    opt['datasets']['train'].update(train_set)
    return opt


def _train_error(opt: dict, tmp_path: Path) -> str:
    """The one-line message ``gaussiansr-train`` exits with for ``opt`` (in-process)."""
    from gaussiansr_arch.train import main

    root = tmp_path / f'run{len(list(tmp_path.glob("run*")))}'  # BasicSR renames a reused experiment
    root.mkdir()
    yml = th.write_yaml(opt, root / 'opt.yml')
    with pytest.raises(SystemExit) as err:
        main(['-opt', yml, '--root', str(root)])
    message = str(err.value)
    assert message.startswith('gaussiansr-train: error: ') and '\n' not in message, message
    return message


def _mutate(data: dict, row: str) -> dict:
    opt = _opt(data)
    train, val = opt['datasets']['train'], opt['datasets']['val_x2']
    if row == 'dataset_type':
        train['type'] = 'NoSuchDataset'
    elif row == 'model_type':
        opt['model_type'] = 'NoSuchModel'
    elif row == 'missing_dataroot_gt':
        del train['dataroot_gt']
    elif row == 'missing_network_g':
        del opt['network_g']
    elif row == 'missing_name':
        del opt['name']
    elif row == 'lr_size_text':
        train['lr_size'] = 'abc'
    elif row == 'scale_min_quoted':
        train['scale_min'] = '1'
    elif row == 'use_hflip_text':
        train['use_hflip'] = 'false'
    elif row == 'scale_min_gt_max':
        train.update(scale_min=3.0, scale_max=2.0)
    elif row == 'val_scale_zero':
        val['scale'] = 0
    elif row == 'missing_path':
        val['dataroot_gt'] = '/nonexistent/val'
    elif row == 'bad_network_option':
        opt['network_g']['num_feat'] = 64
    elif row == 'total_iter_text':
        opt['train']['total_iter'] = 'abc'
    elif row in OPTIMIZATION_ROWS:
        section, key, value = OPTIMIZATION_ROWS[row]
        opt['train'][section][key] = value
    return opt


# train.<section>.<key> = value: what BasicSR would pass to torch/its schedulers as it is.
OPTIMIZATION_ROWS = {
    'optim_lr_unquoted_exponent': ('optim_g', 'lr', '1e-4'),  # YAML 1.1 reads 1e-4 as text
    'optim_type': ('optim_g', 'type', 'SGD'),
    'optim_unknown_key': ('optim_g', 'momentum', 0.9),
    'optim_betas_text': ('optim_g', 'betas', '0.9, 0.99'),
    'milestones_text': ('scheduler', 'milestones', '200000'),
    'gamma_text': ('scheduler', 'gamma', 'half'),
    'scheduler_type': ('scheduler', 'type', 'StepLR'),
    'loss_weight_text': ('pixel_opt', 'loss_weight', 'one'),
}


@pytest.mark.parametrize(
    'row,expected',
    [
        (
            'dataset_type',
            ["unknown type 'NoSuchDataset' in datasets", 'ArbitraryScaleImageDataset', 'PairedImageDataset'],
        ),
        ('model_type', ["unknown type 'NoSuchModel' in model_type", 'ArbitraryScaleSRModel', 'SRModel']),
        ('missing_dataroot_gt', ["dataset 'tiny'", 'option dataroot_gt is required']),
        ('missing_network_g', ["missing option 'network_g'"]),
        ('missing_name', ["missing top-level option(s) ['name']"]),
        ('lr_size_text', ['option lr_size must be an integer', "'abc'"]),
        ('scale_min_quoted', ['option scale_min must be a number', "'1' (str)"]),
        ('use_hflip_text', ['option use_hflip must be true or false', "'false'"]),
        ('scale_min_gt_max', ['scale_min (3.0) > scale_max (2.0)']),
        ('val_scale_zero', ["dataset 'val_x2'", 'scale must be a finite number > 0']),
        ('missing_path', ['dataroot_gt /nonexistent/val does not exist']),
        ('bad_network_option', ["network 'GaussianSR'", "unexpected keyword argument 'num_feat'"]),
        ('total_iter_text', ["train.total_iter must be a number, got 'abc'"]),
        (
            'optim_lr_unquoted_exponent',
            ["train.optim_g.lr must be a number, got '1e-4'", 'write 1.0e-4 or !!float 1e-4'],
        ),
        ('optim_type', ["train.optim_g.type must be one of ['Adam']", "got 'SGD'"]),
        ('optim_unknown_key', ["train.optim_g: unknown option 'momentum'", 'betas']),
        ('optim_betas_text', ["train.optim_g.betas must be a list of numbers, got '0.9, 0.99'"]),
        ('milestones_text', ["train.scheduler.milestones must be a list of integers, got '200000'"]),
        ('gamma_text', ["train.scheduler.gamma must be a number, got 'half'"]),
        ('scheduler_type', ["train.scheduler.type must be one of ['CosineAnnealingRestartLR', 'MultiStepLR'"]),
        ('loss_weight_text', ["train.pixel_opt.loss_weight must be a number, got 'one'"]),
    ],
)
def test_bad_options_exit_with_one_line(data, tmp_path, row, expected):
    message = _train_error(_mutate(data, row), tmp_path)
    for part in expected:
        assert part in message, message


def test_missing_options_file(tmp_path):
    from gaussiansr_arch.train import main

    with pytest.raises(SystemExit, match=r'options file /nonexistent/x.yml does not exist'):
        main(['-opt', '/nonexistent/x.yml', '--root', str(tmp_path)])


# ----------------------------------------------------------------------------- LMDB
def test_lmdb_problems_fail_clearly(data, tmp_path):
    import shutil

    lmdb = Path(data['lmdb'])
    # meta_info.txt listing keys the data does not hold
    meta = tmp_path / 'meta.txt'
    meta.write_text('0000.png (128,128,3) 1\n9999.png (128,128,3) 1\n')
    with pytest.raises(LmdbKeyError, match=r"\['9999'\] listed in .*meta.txt are absent from LMDB"):
        build_dataset(_opt(data, meta_info_file=str(meta))['datasets']['train'])
    # an unfinished build of the prepare tools (<out>.tmp-<pid>)
    unfinished = tmp_path / 'train.lmdb.tmp-1234'
    shutil.copytree(lmdb, unfinished)
    with pytest.raises(ValueError, match='is an unfinished LMDB'):
        build_dataset(_opt(data, dataroot_gt=str(unfinished), meta_info_file=None)['datasets']['train'])
    # no meta_info.txt / no data.mdb
    no_meta = tmp_path / 'no_meta.lmdb'
    shutil.copytree(lmdb, no_meta)
    (no_meta / 'meta_info.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r'no_meta.lmdb: meta_info file .* does not exist'):
        build_dataset(_opt(data, dataroot_gt=str(no_meta), meta_info_file=None)['datasets']['train'])
    (no_meta / 'data.mdb').unlink()
    with pytest.raises(ValueError, match=r'is not an LMDB \(no data.mdb\)'):
        build_dataset(_opt(data, dataroot_gt=str(no_meta), meta_info_file=None)['datasets']['train'])
    # an image folder given as LMDB, through the train entry
    message = _train_error(_opt(data, dataroot_gt=data['val'], meta_info_file=None), tmp_path)
    assert f"dataset 'tiny' (ArbitraryScaleImageDataset): dataroot_gt {data['val']} is not an LMDB" in message


# ----------------------------------------------------------------------------- checkpoints
def _other_config_weights(path: Path, **net_opt) -> str:
    opt = {k: v for k, v in {**th.TINY_NET, **net_opt}.items() if k != 'type'}
    torch.save({'params': GaussianSR(**opt).state_dict()}, path)
    return str(path)


def test_pretrained_weights_of_other_arch_or_config(data, tmp_path):
    opt = _opt(data)
    opt['path']['pretrain_network_g'] = _other_config_weights(tmp_path / 'mlp.pth', decoder='mlp')
    message = _train_error(opt, tmp_path)
    assert f'network file {tmp_path}/mlp.pth does not fit GaussianSR' in message
    assert 'missing keys 5 (decoder.coef.bias, ' in message and 'shape mismatch 1 (' in message, message
    opt['network_g']['decoder'] = 'mlp'  # the other way round: LTE weights into an MLP decoder
    opt['path']['pretrain_network_g'] = _other_config_weights(tmp_path / 'lte.pth')
    message = _train_error(opt, tmp_path)
    assert 'lte.pth' in message and 'unexpected keys 5 (decoder.coef.bias, ' in message, message
    opt['network_g']['decoder'] = 'lte'
    opt['path']['pretrain_network_g'] = _other_config_weights(
        tmp_path / 'wide.pth', encoder_opt={'num_feat': 8, 'num_block': 1}
    )
    message = _train_error(opt, tmp_path)
    assert 'wide.pth' in message and 'shape mismatch' in message and '(16, 3, 3, 3)' in message, message


def test_truncated_pretrained_weights(data, tmp_path):
    good = _other_config_weights(tmp_path / 'good.pth')
    blob = Path(good).read_bytes()
    (tmp_path / 'cut.pth').write_bytes(blob[: len(blob) // 2])
    opt = _opt(data)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'cut.pth')
    message = _train_error(opt, tmp_path)
    assert f'network file {tmp_path}/cut.pth cannot be loaded (truncated' in message


def test_subprocess_errors_have_no_traceback(data, tmp_path):
    """The real entry in fresh processes: last stderr line is the error, no traceback anywhere."""
    bad_type = th.write_yaml(_mutate(data, 'scale_min_quoted'), tmp_path / 'a.yml')
    opt = _opt(data)
    opt['path']['pretrain_network_g'] = _other_config_weights(tmp_path / 'mlp.pth', decoder='mlp')
    bad_ckpt = th.write_yaml(opt, tmp_path / 'b.yml')
    procs = [
        subprocess.Popen(
            [sys.executable, '-m', 'gaussiansr_arch.train', '-opt', yml, '--root', str(tmp_path / k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for k, yml in (('a', bad_type), ('b', bad_ckpt))
    ]
    for proc, expected in zip(procs, ['option scale_min must be a number', 'does not fit GaussianSR']):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-2000:]
        assert 'Traceback' not in out + err
        last = err.strip().splitlines()[-1]
        assert last.startswith('gaussiansr-train: error: ') and expected in last, last
    # the traceback stays available for bug reports
    proc = subprocess.run(
        [sys.executable, '-m', 'gaussiansr_arch.train', '-opt', bad_type, '--root', str(tmp_path / 'c')],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(ENV, GAUSSIANSR_DEBUG='1'),
    )
    assert proc.returncode == 1 and 'Traceback' in proc.stderr


# ----------------------------------------------------------------------------- crash safety
_SAVER = """
import os, sys, time, torch
from gaussiansr_arch.utils import atomic, checkpoint
real_fsync = os.fsync
def slow_fsync(fd):  # the data is written; hold the process before the rename
    real_fsync(fd)
    print('inside', flush=True)
    time.sleep(60)
atomic.os.fsync = slow_fsync
checkpoint.atomic_torch_save({'params': {'w': torch.ones(16 * 2 ** 20)}}, sys.argv[1])  # 64 MB
"""


def test_kill_inside_atomic_save_keeps_previous_checkpoint(tmp_path):
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir()
    states.mkdir()
    for it in (2, 4):
        checkpoint.atomic_torch_save({'params': {'w': torch.full((3,), float(it))}}, str(models / f'net_g_{it}.pth'))
        checkpoint.atomic_torch_save({'iter': it, 'epoch': 0, 'name': 'x'}, str(states / f'{it}.state'))
    before = (models / 'net_g_4.pth').read_bytes()
    for target, was_there in ((models / 'net_g_4.pth', True), (models / 'net_g_6.pth', False)):
        proc = subprocess.Popen([sys.executable, '-c', _SAVER, str(target)], stdout=subprocess.PIPE, text=True, env=ENV)
        try:
            assert proc.stdout.readline().strip() == 'inside'
            time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert target.exists() == was_there  # never a partial file under the final name
    assert (models / 'net_g_4.pth').read_bytes() == before
    leftovers = [p.name for p in models.iterdir() if p.name.endswith(checkpoint.TMP_SUFFIX)]
    assert len(leftovers) == 2 and all(n.startswith('.') for n in leftovers)  # hidden, never picked up
    # a state whose network file never completed is skipped: auto_resume takes the newest complete pair
    checkpoint.atomic_torch_save({'iter': 6, 'epoch': 0, 'name': 'x'}, str(states / '6.state'))
    path, state = find_latest_resume_state(str(states), str(models))
    assert path == str(states / '4.state') and state['iter'] == 4
