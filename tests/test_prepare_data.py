"""Data preparation tools: DIV2K / benchmark LMDBs, generated LR, atomicity, re-runs, --verify."""

import os
import re
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from gaussiansr_arch.data.arbitrary_scale_dataset import (
    ArbitraryScaleImageDataset,
    ArbitraryScalePairedDataset,
    hr_crop_and_lr_size,
    make_lr,
)
from gaussiansr_arch.toolkit import lmdb_tools
from gaussiansr_arch.toolkit.lmdb_tools import subimage_origins, verify_lmdb
from gaussiansr_arch.tools import prepare_benchmark, prepare_div2k

import train_helpers as th

REPO = Path(__file__).resolve().parents[1]
LMDB = {'type': 'lmdb'}


def _photo(name, h, w):
    img = getattr(skimage.data, name)()
    return np.ascontiguousarray(img[40 : 40 + 2 * h : 2, 60 : 60 + 2 * w : 2, :3])


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _lr_of(rgb, scale):
    (hh, ww), size = hr_crop_and_lr_size(rgb.shape[:2], scale)
    return np.round(make_lr(rgb[:hh, :ww].astype(np.float32) / 255.0, size) * 255).astype(np.uint8)


@pytest.fixture
def div2k(tmp_path):
    root = tmp_path / 'DIV2K'
    for i, name in enumerate(('astronaut', 'chelsea', 'coffee'), 1):
        _write(root / 'DIV2K_train_HR' / f'{i:04d}.png', _photo(name, 60, 75))
    for i, name in enumerate(('rocket', 'cat'), 801):
        hr = _photo(name, 50, 62)
        _write(root / 'DIV2K_valid_HR' / f'{i:04d}.png', hr)
        _write(root / 'DIV2K_valid_LR_bicubic' / 'X2' / f'{i:04d}x2.png', _lr_of(hr, 2))
    return root


def _div2k_args(root, *extra):
    return ['--root', str(root), '--crop-size', '32', '--step', '16', '--workers', '2', *extra]


def _leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if '.tmp-' in p.name or '.old-' in p.name]


def _error(capsys, info) -> str:
    """The one ``error: ...`` line of a tool that exited with status 2 (progress bars may precede it)."""
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith('error: ')]
    assert len(errors) == 1 and err[-1] == errors[0] and 'Traceback' not in '\n'.join(err), err
    return errors[0]


def test_div2k_builds_lmdbs_usable_by_datasets(div2k, capsys):
    assert prepare_div2k.main(_div2k_args(div2k, '--lr-scales', '2.4', '2', '--verify')) == 0
    names = sorted(p.name for p in div2k.iterdir() if p.name.endswith('.lmdb'))
    assert names == [
        'DIV2K_train_HR_sub.lmdb',
        'DIV2K_valid_HR.lmdb',
        'DIV2K_valid_LR_bicubic_X2.4.lmdb',
        'DIV2K_valid_LR_bicubic_X2.lmdb',
    ]
    assert 'verified' in capsys.readouterr().out and not _leftovers(div2k)

    # sub-images: 60x75 with crop 32, step 16 -> rows [0, 16, 28], cols [0, 16, 32, 43]
    assert subimage_origins(60, 32, 16, 0) == [0, 16, 28]
    assert subimage_origins(75, 32, 16, 0) == [0, 16, 32, 43]
    meta = (div2k / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt').read_text().splitlines()
    assert len(meta) == 3 * 12 and meta[0] == '0001_s001.png (32,32,3) 1'
    assert meta[-1].startswith('0003_s012.png')
    train = ArbitraryScaleImageDataset(
        {
            'dataroot_gt': str(div2k / 'DIV2K_train_HR_sub.lmdb'),
            'io_backend': LMDB,
            'lr_size': 8,
            'scale_min': 1,
            'scale_max': 4,
            'sample_q': 64,
        }
    )
    assert len(train) == 36 and train[5]['lq'].shape == (3, 8, 8)
    # the last sub-image of 0001 is the bottom-right 32x32 corner
    corner = cv2.imread(str(div2k / 'DIV2K_train_HR' / '0001.png'))[28:60, 43:75, ::-1]
    first = ArbitraryScalePairedDataset(
        {'dataroot_gt': str(div2k / 'DIV2K_train_HR_sub.lmdb'), 'scale': 1, 'io_backend': LMDB}
    )[11]
    np.testing.assert_array_equal(np.round(first['gt'].numpy().transpose(1, 2, 0) * 255), corner)

    # shipped X2 LR and generated X2.4 LR pair with the valid HR; generated == on-the-fly protocol
    for scale, tmpl in ((2, '{}x2'), (2.4, '{}x2.4')):
        opt = {
            'dataroot_gt': str(div2k / 'DIV2K_valid_HR.lmdb'),
            'scale': scale,
            'io_backend': LMDB,
            'dataroot_lq': str(div2k / f'DIV2K_valid_LR_bicubic_X{scale:g}.lmdb'),
            'filename_tmpl': tmpl,
        }
        packed = ArbitraryScalePairedDataset(opt)[0]
        fly = ArbitraryScalePairedDataset({k: opt[k] for k in ('dataroot_gt', 'scale', 'io_backend')})[0]
        torch.testing.assert_close(packed['lq'], fly['lq'])
        torch.testing.assert_close(packed['gt'], fly['gt'])


def test_rerun_is_noop_and_overwrite_rebuilds(div2k, capsys):
    args = _div2k_args(div2k, '--parts', 'valid')
    assert prepare_div2k.main(args) == 0
    data = div2k / 'DIV2K_valid_HR.lmdb' / 'data.mdb'
    stamp = data.stat().st_mtime_ns
    capsys.readouterr()
    assert prepare_div2k.main(args + ['--verify']) == 0
    out = capsys.readouterr().out
    assert 'already exists' in out and 'verified' in out and data.stat().st_mtime_ns == stamp
    assert prepare_div2k.main(args + ['--overwrite']) == 0
    assert 'wrote 2 images' in capsys.readouterr().out and not _leftovers(div2k)


def test_corrupt_source_stops_run_without_final_lmdb(div2k, capsys):
    bad = div2k / 'DIV2K_train_HR' / '0002.png'
    bad.write_bytes(bad.read_bytes()[:300])  # truncated midway through the list
    with pytest.raises(SystemExit) as info:
        prepare_div2k.main(_div2k_args(div2k, '--parts', 'train'))
    msg = _error(capsys, info)
    assert msg.startswith('error: cannot read image') and str(bad) in msg and '--skip-bad' in msg
    assert not (div2k / 'DIV2K_train_HR_sub.lmdb').exists() and not _leftovers(div2k)

    assert prepare_div2k.main(_div2k_args(div2k, '--parts', 'train', '--skip-bad', '--verify')) == 0
    captured = capsys.readouterr()
    assert f'skipping unreadable image {bad}' in captured.err
    meta = (div2k / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt').read_text()
    assert '0001_s001' in meta and '0002_' not in meta and '0003_s012' in meta


def test_interrupt_leaves_nothing_under_final_name(div2k, monkeypatch, capsys):
    calls = {'n': 0}
    real = lmdb_tools._run_task

    def flaky(args):
        calls['n'] += 1
        if calls['n'] == 2:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(lmdb_tools, '_run_task', flaky)
    with pytest.raises(SystemExit) as info:  # Ctrl-C: exit 130 with one line, as every tool
        prepare_div2k.main(_div2k_args(div2k, '--parts', 'train', '--workers', '1'))
    assert info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'error: interrupted; no partial output was left under a final name'
    )
    assert not (div2k / 'DIV2K_train_HR_sub.lmdb').exists() and not _leftovers(div2k)


def test_verify_catches_tampered_meta_info(div2k, capsys):
    assert prepare_div2k.main(_div2k_args(div2k, '--parts', 'valid')) == 0
    path = div2k / 'DIV2K_valid_HR.lmdb'
    meta = path / 'meta_info.txt'
    good = meta.read_text()
    assert verify_lmdb(str(path)) == []
    meta.write_text(good.replace('0802.png (50,62,3)', '0802.png (51,62,3)'))
    with pytest.raises(SystemExit) as info:
        prepare_div2k.main(_div2k_args(div2k, '--parts', 'valid', '--verify'))
    assert re.fullmatch(
        r"error: verify .*key '0802': meta_info says \(51, 62, 3\), stored image is \(50, 62, 3\)", _error(capsys, info)
    )
    meta.write_text(good + '0999.png (8,8,3) 1\n')
    assert any("'0999' listed" in p for p in verify_lmdb(str(path)))
    meta.write_text(good.splitlines()[0] + '\n')
    assert verify_lmdb(str(path)) == [f'1 key(s) in {path} are not listed in {meta}']


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        prepare_div2k.main(['--root', str(tmp_path / 'nope')])
    assert _error(capsys, info) == (
        f'error: {tmp_path / "nope" / "DIV2K_train_HR"} does not exist (use --parts to build only the validation sets)'
    )
    with pytest.raises(SystemExit) as info:
        prepare_div2k.main(['--root', str(tmp_path), '--lr-scales', 'abc'])
    assert info.value.code == 2 and 'scale must be a number' in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        prepare_benchmark.main(['--root', str(tmp_path), '--scales', '0'])
    assert info.value.code == 2 and 'scale must be' in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        prepare_benchmark.main(['--root', str(tmp_path)])
    assert _error(capsys, info) == f'error: no <set>/HR folders in {tmp_path}'


@pytest.mark.parametrize('script, words', [('prepare_div2k.py', '--lr-scales'), ('prepare_benchmark.py', '--format')])
def test_script_wrappers_help(script, words, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [script, '--help'])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / 'scripts' / script), run_name='__main__')
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert words in out and '--overwrite' in out and '--verify' in out and '--skip-bad' in out


@pytest.fixture
def bench(tmp_path):
    root = tmp_path / 'benchmark'
    for name, (h, w) in (('baby', (41, 50)), ('bird', (44, 39))):
        hr = _photo('astronaut' if name == 'baby' else 'coffee', h, w)
        _write(root / 'Set5' / 'HR' / f'{name}.png', hr)
        _write(root / 'Set5' / 'LR_bicubic' / 'X2' / f'{name}x2.png', _lr_of(hr, 2))
    return root


def test_benchmark_folder_format_generates_missing_scales(bench):
    assert prepare_benchmark.main(['--root', str(bench), '--scales', '2', '2.4', '6', '--workers', '2']) == 0
    gen = bench / 'Set5' / 'LR_bicubic' / 'X2.4'
    assert sorted(os.listdir(gen)) == ['babyx2.4.png', 'birdx2.4.png']
    assert sorted(os.listdir(bench / 'Set5' / 'LR_bicubic' / 'X6')) == ['babyx6.png', 'birdx6.png']
    assert not _leftovers(bench / 'Set5' / 'LR_bicubic')
    opt = {'dataroot_gt': str(bench / 'Set5' / 'HR'), 'scale': 2.4}
    files = ArbitraryScalePairedDataset(dict(opt, dataroot_lq=str(gen), filename_tmpl='{}x2.4'))
    fly = ArbitraryScalePairedDataset(opt)
    for i in range(2):
        torch.testing.assert_close(files[i]['lq'], fly[i]['lq'])
        torch.testing.assert_close(files[i]['gt'], fly[i]['gt'])


def test_benchmark_lmdb_format_and_mismatch(bench, tmp_path, capsys):
    out = tmp_path / 'packed'
    args = ['--root', str(bench), '--out', str(out), '--scales', '2', '3.6', '--format', 'lmdb', '--verify']
    assert prepare_benchmark.main(args + ['--workers', '1']) == 0
    assert sorted(os.listdir(out / 'Set5')) == ['HR.lmdb', 'LR_bicubic_X2.lmdb', 'LR_bicubic_X3.6.lmdb']
    ds = ArbitraryScalePairedDataset(
        {
            'dataroot_gt': str(out / 'Set5' / 'HR.lmdb'),
            'io_backend': LMDB,
            'dataroot_lq': str(out / 'Set5' / 'LR_bicubic_X2.lmdb'),
            'filename_tmpl': '{}x2',
            'scale': 2,
        }
    )
    assert ds[0]['lq'].shape == (3, 20, 25) and ds[0]['gt'].shape == (3, 40, 50)

    # a shipped LR of the wrong size is reported with both files
    lr = bench / 'Set5' / 'LR_bicubic' / 'X2' / 'birdx2.png'
    _write(lr, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(SystemExit) as info:
        prepare_benchmark.main(args + ['--overwrite'])
    msg = _error(capsys, info)
    assert msg.startswith('error: size mismatch at x2: HR ') and 'bird.png is 44x39' in msg and str(lr) in msg


def test_output_paths_a_user_can_get_wrong(bench, div2k, tmp_path, capsys, monkeypatch):
    """--out an existing file or under a file, and a disk that fills up: one line, exit 2, nothing partial."""
    blocker = tmp_path / 'file.lmdb'
    blocker.write_bytes(b'x')
    with pytest.raises(SystemExit) as info:
        prepare_div2k.main(_div2k_args(div2k, '--parts', 'valid', '--out', str(blocker)))
    assert _error(capsys, info) == f'error: output folder {blocker} is an existing file, not a folder'
    with pytest.raises(SystemExit) as info:
        prepare_benchmark.main(['--root', str(bench), '--out', str(blocker / 'sub'), '--workers', '1'])
    assert (
        _error(capsys, info) == f'error: output folder {blocker / "sub"} cannot be created: {blocker} is a file, '
        'not a folder'
    )
    assert blocker.read_bytes() == b'x'

    # ENOSPC while a generated LR PNG is written: the unfinished build and the folders made for it are removed
    th.fill_disk(monkeypatch, lmdb_tools)
    with pytest.raises(SystemExit) as info:
        prepare_benchmark.main(
            ['--root', str(bench), '--out', str(tmp_path / 'packed'), '--scales', '2.4', '--workers', '1']
        )
    out = tmp_path / 'packed' / 'Set5' / 'LR_bicubic' / 'X2.4'
    assert _error(capsys, info) == f'error: cannot write {out}: No space left on device'
    assert not (tmp_path / 'packed').exists() and not th.hidden_or_tmp(tmp_path)


def test_benchmark_general100_hr_only(bench, tmp_path, capsys):
    """General100 is released as HR BMPs without LR: in <set>/HR its x2/x3/x4 are generated like any scale."""
    hr = bench / 'General100' / 'HR'
    for name, photo in (('im_1', 'rocket'), ('im_2', 'cat')):
        _write(hr / f'{name}.bmp', _photo(photo, 37, 45))
    assert prepare_benchmark.main(['--root', str(bench), '--scales', '2', '3', '4', '--workers', '1']) == 0
    for s in (2, 3, 4):
        assert sorted(os.listdir(bench / 'General100' / 'LR_bicubic' / f'X{s}')) == [f'im_1x{s}.png', f'im_2x{s}.png']
    assert sorted(os.listdir(bench / 'Set5' / 'LR_bicubic')) == ['X2', 'X3', 'X4']  # found by default too
    # as the generated test options read them (options/test/test_*_General100.yml)
    opt = {'dataroot_gt': str(hr), 'scale': 3}
    lq = str(hr.parent / 'LR_bicubic' / 'X3')
    files = ArbitraryScalePairedDataset(dict(opt, dataroot_lq=lq, filename_tmpl='{}x3'))
    fly = ArbitraryScalePairedDataset(opt)
    for i in range(2):
        torch.testing.assert_close(files[i]['lq'], fly[i]['lq'])
        assert files[i]['gt'].shape == (3, 36, 45)

    # the release's flat folder is reported (by name or found by default), not skipped
    flat = tmp_path / 'flat'
    _write(flat / 'General100' / 'im_1.bmp', _photo('rocket', 37, 45))
    _write(flat / 'Set5' / 'HR' / 'baby.png', _photo('astronaut', 41, 50))
    for extra in ([], ['--datasets', 'General100']):
        with pytest.raises(SystemExit) as info:
            prepare_benchmark.main(['--root', str(flat), *extra])
        assert _error(capsys, info) == (
            f'error: {flat / "General100" / "HR"} does not exist but {flat / "General100"} holds images: move them '
            f'into {flat / "General100" / "HR"} (a set released as one flat folder, e.g. General100, goes in <set>/HR)'
        )
    assert not (flat / 'Set5' / 'LR_bicubic').exists()  # checked before anything is built
    with pytest.raises(SystemExit):
        prepare_benchmark.main(['--help'])
    assert 'General100' in capsys.readouterr().out


def test_worker_pool_survives_a_parent_that_used_torch_threads(tmp_path):
    """The preparation tools also run inside processes that have already run torch and OpenCV on several
    threads (this suite, a notebook). A worker forked from such a process hangs in its first multi-threaded
    torch op (OpenMP is not fork-safe): the suite once hung here for the whole CI limit. Workers run
    single-threaded, as DataLoader's do."""
    import subprocess

    root = tmp_path / 'bench'
    for name in ('astronaut', 'coffee', 'chelsea'):
        _write(root / 'Set5' / 'HR' / f'{name}.png', getattr(skimage.data, name)()[:300, :300, :3])
    script = (
        'import sys, torch\n'
        'from gaussiansr_arch.tools import prepare_benchmark\n'
        'torch.set_num_threads(2)\n'
        'torch.rand(4_000_000).exp().sum()  # the intra-op pool (OpenMP) is now running\n'
        'import cv2, numpy as np\n'
        'cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (1000, 1000), interpolation=cv2.INTER_AREA)  # its pool too\n'
        'args = ["--root", sys.argv[1], "--out", sys.argv[2], "--scales", "3", "--workers", "2"]\n'
        'sys.exit(prepare_benchmark.main(args))\n'
    )
    cmd = [sys.executable, '-c', script, str(root), str(tmp_path / 'out')]
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}  # the pools as a user has them
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(os.listdir(tmp_path / 'out' / 'Set5' / 'LR_bicubic' / 'X3')) == 3
