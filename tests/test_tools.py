"""Command-line tools: upscale, compare, plot_curves, kernel_bank (tiny random GaussianSR, small images)."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from skimage import data

from gaussiansr_arch.archs.precision import upscale_tensor
from gaussiansr_arch.archs.tiling import encode_tiled, receptive_radius
from gaussiansr_arch.data.protocol import image_to_tensor, tensor_to_image
from gaussiansr_arch.tools import compare, kernel_bank, plot_curves, upscale
from gaussiansr_arch.tools.common import parse_scale
from gaussiansr_arch.utils.image_io import imresize_to, read_image

import train_helpers as th
from conftest import REPO_ROOT, TINY_GAUSSIANSR_OPT


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """A tiny GaussianSR saved with its network_g, a second mismatching one, and three small images."""
    root = tmp_path_factory.mktemp('tools')
    torch.manual_seed(0)
    net = build_network(copy.deepcopy(TINY_GAUSSIANSR_OPT)).eval()
    weights = root / 'tiny.pth'
    torch.save({'params': net.state_dict(), 'network_g': copy.deepcopy(TINY_GAUSSIANSR_OPT)}, weights)
    other_opt = dict(copy.deepcopy(TINY_GAUSSIANSR_OPT), bank_size=9)
    other = build_network(copy.deepcopy(other_opt))
    bad = root / 'other_bank.pth'
    torch.save({'params': other.state_dict()}, bad)
    opt_yml = root / 'run.yml'
    opt_yml.write_text(yaml.safe_dump({'network_g': copy.deepcopy(TINY_GAUSSIANSR_OPT)}))
    imgs = root / 'imgs'
    imgs.mkdir()
    crops = {
        'astro': data.astronaut()[100:120, 180:204],
        'coffee': data.coffee()[60:80, 120:146],
        'chelsea': data.chelsea()[80:98, 100:122],
    }
    for name, img in crops.items():
        cv2.imwrite(str(imgs / f'{name}.png'), img[:, :, ::-1])
    hr_dir = root / 'hr'  # big enough for SSIM's 11x11 window after the crop border
    hr_dir.mkdir()
    cv2.imwrite(str(hr_dir / 'astro.png'), data.astronaut()[90:130, 170:214, ::-1])
    cv2.imwrite(str(hr_dir / 'coffee.png'), data.coffee()[60:100, 120:160, ::-1])
    return {
        'hr': hr_dir,
        'root': root,
        'net': net,
        'weights': str(weights),
        'bad': str(bad),
        'opt': str(opt_yml),
        'imgs': imgs,
        'crops': crops,
    }


def _up(env, *args):
    return upscale.run([*map(str, args), '--weights', env['weights'], '--quiet'])


def _error(capsys, func, argv) -> str:
    return th.tool_error(capsys, func, argv, progress=True)  # progress-bar lines may precede it


# ---------------------------------------------------------------------------- upscale
def test_upscale_file_scale_equals_arch(env, tmp_path):
    out = _up(env, env['imgs'] / 'astro.png', '--scale', '2.5', '-o', tmp_path)
    assert [os.path.basename(p) for p in out] == ['astro_x2.5.png']
    got = read_image(out[0])
    assert got.shape == (50, 60, 3)
    with torch.no_grad():
        ref = env['net'].upscale(image_to_tensor(env['crops']['astro']), scale=2.5)
    np.testing.assert_array_equal(got, tensor_to_image(ref))


def test_upscale_bf16_precision_close_to_fp32(env, tmp_path):
    fp32 = read_image(_up(env, env['imgs'] / 'astro.png', '--scale', '2.5', '-o', tmp_path / 'a')[0]).astype(int)
    bf16 = read_image(
        _up(env, env['imgs'] / 'astro.png', '--scale', '2.5', '-o', tmp_path / 'b', '--precision', 'bf16')[0]
    ).astype(int)
    assert bf16.shape == fp32.shape
    assert 0 < np.abs(bf16 - fp32).max() <= 8  # ran in bf16, within a few 8-bit levels


def test_upscale_folder_size_and_glob_pair_scale(env, tmp_path):
    out = _up(env, env['imgs'], '--size', '33x41', '-o', tmp_path / 'a')
    assert sorted(os.path.basename(p) for p in out) == [
        'astro_33x41.png',
        'chelsea_33x41.png',
        'coffee_33x41.png',
    ]
    assert all(read_image(p).shape == (33, 41, 3) for p in out)
    out = _up(env, str(env['imgs'] / 'c*.png'), '--scale', '1.5x2', '-o', tmp_path / 'b')
    assert sorted(os.path.basename(p) for p in out) == ['chelsea_x1.5x2.png', 'coffee_x1.5x2.png']
    assert read_image(tmp_path / 'b' / 'coffee_x1.5x2.png').shape == (30, 52, 3)


def test_upscale_with_opt_yaml(env, tmp_path):
    out = upscale.run(
        [
            str(env['imgs'] / 'astro.png'),
            '--scale',
            '2',
            '--weights',
            env['weights'],
            '--opt',
            env['opt'],
            '--param-key',
            'params',
            '-o',
            str(tmp_path),
            '--quiet',
        ]
    )
    assert read_image(out[0]).shape == (40, 48, 3)


def test_tiled_encoding_equals_untiled(env, tmp_path):
    net = env['net']
    img = np.concatenate([env['crops']['astro'], env['crops']['coffee'][:, :24]], axis=0)  # 40x24
    lq = image_to_tensor(img)
    radius = receptive_radius(net.encoder)
    assert radius == 4  # conv_first + 2 convs per block x 1 + conv_after_body
    with torch.no_grad():
        full = net.upscale(lq, size=(70, 43))
        tiled = upscale_tensor(net, lq, (70, 43), 1000, tile=11, overlap=radius)
        state = encode_tiled(net, lq, 7, radius)
    assert (full - tiled).abs().max() < 1e-4
    assert torch.equal(state.kernels.choice, net.encode(lq).kernels.choice)
    a = _up(env, env['imgs'] / 'coffee.png', '--scale', '2', '-o', tmp_path / 'a')
    b = _up(env, env['imgs'] / 'coffee.png', '--scale', '2', '-o', tmp_path / 'b', '--tile', '8')
    assert np.abs(read_image(a[0]).astype(int) - read_image(b[0]).astype(int)).max() <= 1


def test_upscale_never_overwrites_without_force(env, tmp_path, capsys):
    out = _up(env, env['imgs'] / 'astro.png', '--scale', '2', '-o', tmp_path)
    before = os.path.getmtime(out[0])
    argv = [str(env['imgs'] / 'astro.png'), '--scale', '2', '--weights', env['weights'], '-o', str(tmp_path)]
    assert 'astro_x2.png exists' in _error(capsys, upscale.run, argv)
    assert os.path.getmtime(out[0]) == before
    upscale.run(argv + ['--force', '--quiet'])
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]  # no temporary files left


@pytest.mark.parametrize(
    'extra, culprit',
    [
        (['--scale', '0'], "'0'"),
        (['--scale', 'nan'], "'nan'"),
        (['--scale', 'abc'], "'abc'"),
        (['--scale', '0x10'], "'0'"),
        (['--scale', '-2'], "'-2'"),
        (['--size', '10x0'], '10x0'),
        (['--scale', '4', '--max-pixels', '1000'], 'exceeds --max-pixels'),
    ],
)
def test_upscale_bad_target(env, tmp_path, capsys, extra, culprit):
    argv = [str(env['imgs'] / 'astro.png'), *extra, '--weights', env['weights'], '-o', str(tmp_path)]
    assert culprit in _error(capsys, upscale.run, argv)


def test_upscale_bad_inputs_and_weights(env, tmp_path, capsys):
    base = ['--scale', '2', '-o', str(tmp_path / 'out'), '--weights', env['weights']]
    assert 'missing.png' in _error(capsys, upscale.run, [str(tmp_path / 'missing.png'), *base])
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\nnot really a png')
    assert 'corrupt.png' in _error(capsys, upscale.run, [str(corrupt), *base])
    msg = _error(
        capsys,
        upscale.run,
        [
            str(env['imgs'] / 'astro.png'),
            '--scale',
            '2',
            '-o',
            str(tmp_path),
            '--weights',
            env['bad'],
            '--opt',
            env['opt'],
        ],
    )
    assert 'other_bank.pth' in msg and 'shape mismatch' in msg and 'classifier' in msg
    # Weights that record no network_g, without --opt: gaussiansr_arch.load_model detects the arch
    # from the shapes (the tools and the library load the same files) ...
    detected = tmp_path / 'detected'
    upscale.run([str(env['imgs'] / 'astro.png'), '--scale', '2', '-o', str(detected), '--weights', env['bad']])
    assert len(list(detected.glob('*.png'))) == 1
    # ... and a layout no method fits is one line naming the file and asking for its network_g.
    foreign = tmp_path / 'foreign.pth'
    torch.save({'conv.weight': torch.zeros(3, 3, 3, 3)}, foreign)
    msg = _error(
        capsys,
        upscale.run,
        [str(env['imgs'] / 'astro.png'), '--scale', '2', '-o', str(tmp_path), '--weights', str(foreign)],
    )
    assert 'foreign.pth' in msg and 'unknown layout' in msg and 'give its network_g' in msg
    fp16_on_cpu = [str(env['imgs'] / 'astro.png'), *base, '--device', 'cpu', '--precision', 'fp16']
    assert 'fp16 needs a CUDA device' in _error(capsys, upscale.run, fp16_on_cpu)


def test_parse_scale():
    assert parse_scale('3.7') == 3.7 and parse_scale('2.5x3') == (2.5, 3.0)


def test_cli_error_is_one_line_without_traceback(env, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / 'scripts' / 'upscale.py'),
            str(tmp_path / 'nope.png'),
            '--scale',
            '2',
            '--weights',
            env['weights'],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f'error: input {tmp_path / "nope.png"}: no such file or folder']


# ---------------------------------------------------------------------------- compare
def test_compare_outputs_and_bicubic_psnr(env, tmp_path):
    out = tmp_path / 'cmp'
    results = compare.run(
        [
            '--model',
            f'tiny={env["weights"]}',
            '--model',
            'bicubic',
            '--hr',
            str(env['hr']),
            '--scales',
            '2',
            '3.5',
            '-o',
            str(out),
            '--max-images',
            '2',
            '--quiet',
        ]
    )
    for name in (
        'results.md',
        'results.csv',
        'psnr_vs_scale.png',
        'crops/hr_x2_astro.png',
        'crops/hr_x3.5_astro.png',
    ):
        assert (out / name).is_file(), name
    csv_text = (out / 'results.csv').read_text()
    assert csv_text.count('\n') == 5 and 'tiny,hr,3.5' in csv_text
    # bicubic by hand on the first image at x2: HR 40x44 -> LR 20x22
    hr = read_image(env['hr'] / 'astro.png')
    lr = (np.clip(imresize_to(hr.astype(np.float32) / 255, (20, 22)), 0, 1) * 255).round().astype(np.uint8)
    sr = (np.clip(imresize_to(lr.astype(np.float32) / 255, (40, 44)), 0, 1) * 255).round().astype(np.uint8)
    ref = calculate_psnr(sr[:, :, ::-1], hr[:, :, ::-1], 2, input_order='HWC', test_y_channel=True)
    assert results[('Bicubic', 'hr', 2.0)].psnr[0] == pytest.approx(ref, abs=1e-9)
    for r in results.values():
        assert all(10 < p < 60 for p in r.psnr) and all(0 < s <= 1 for s in r.ssim)
    assert 'tiny' in (out / 'results.md').read_text()


def test_compare_config_skips_other_scales_of_fixed_models(env, tmp_path):
    edsr_opt = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    edsr = build_network(copy.deepcopy(edsr_opt))
    torch.save({'params': edsr.state_dict(), 'network_g': edsr_opt}, tmp_path / 'edsr.pth')
    cfg = tmp_path / 'cmp.yml'
    cfg.write_text(
        f'output: {tmp_path / "out"}\nmax_images: 1\ncrops: 0\nmodels:\n'
        f'  - {{name: EDSR, weights: {tmp_path / "edsr.pth"}}}\n  - {{name: Bicubic, type: bicubic}}\n'
        f'datasets:\n  - {{name: S, hr: {env["hr"]}, scales: [2, 3], crop_border: scale+1, '
        f'test_y_channel: false}}\n'
    )
    results = compare.run(['--config', str(cfg), '--quiet'])
    assert len(results[('EDSR', 'S', 2.0)].psnr) == 1
    assert 'skipped' in results[('EDSR', 'S', 3.0)].note
    assert 'skipped' in (tmp_path / 'out' / 'results.md').read_text()


def test_compare_reads_lr_folders(env, tmp_path, capsys):
    """Datasets with their own LR files (``lr`` with ``{scale}``, ``filename_tmpl``): the LR is read, not made."""
    lr_root = tmp_path / 'lr'
    for scale in (2, 4):
        folder = lr_root / f'X{scale}'
        folder.mkdir(parents=True)
        for name in ('astro', 'coffee'):
            hr = read_image(env['hr'] / f'{name}.png')
            h, w = hr.shape[0] // scale, hr.shape[1] // scale
            lr = imresize_to(hr[: h * scale, : w * scale].astype(np.float32) / 255, (h, w))
            lr = (np.clip(lr, 0, 1) * 255).round().astype(np.uint8)
            lr[0, 0] = 255 - lr[0, 0]  # a pixel a made LR would not have: proves the file is used
            cv2.imwrite(str(folder / f'{name}x{scale}.png'), lr[:, :, ::-1])
    cfg = tmp_path / 'cmp.yml'
    cfg.write_text(
        f'output: {tmp_path / "out"}\ncrops: 0\nmodels:\n  - {{name: Bicubic, type: bicubic}}\n'
        f'datasets:\n  - {{name: L, hr: {env["hr"]}, lr: "{lr_root}/X{{scale}}", filename_tmpl: "{{}}x{{scale}}", '
        f'scales: [2, 4], crop_border: scale, test_y_channel: true}}\n'
    )
    results = compare.run(['--config', str(cfg), '--quiet'])
    hr = read_image(env['hr'] / 'astro.png')
    lr = read_image(lr_root / 'X4' / 'astrox4.png')
    hr = hr[: lr.shape[0] * 4, : lr.shape[1] * 4]
    sr = (np.clip(imresize_to(lr.astype(np.float32) / 255, hr.shape[:2]), 0, 1) * 255).round().astype(np.uint8)
    ref = calculate_psnr(sr[:, :, ::-1], hr[:, :, ::-1], 4, input_order='HWC', test_y_channel=True)
    assert results[('Bicubic', 'L', 4.0)].psnr[0] == pytest.approx(ref, abs=1e-9)
    assert len(results[('Bicubic', 'L', 2.0)].psnr) == 2
    # a missing LR file is one line naming it
    (lr_root / 'X2' / 'coffeex2.png').unlink()
    message = _error(capsys, compare.run, ['--config', str(cfg), '--quiet', '--force'])
    assert 'coffeex2.png' in message and 'no LR image' in message


# ---------------------------------------------------------------------------- plot_curves
LOG = """2024-01-01 10:00:00,000 INFO: [epoch:  0, iter:     100, lr:(1.000e-04,)] [eta: 1:00:00] l_pix: 1e-1
2024-01-01 10:00:05,000 INFO: Validation Set5
\t # psnr: 30.1000\tBest: 30.1000 @ 100 iter
\t # ssim: 0.8000\tBest: 0.8000 @ 100 iter

2024-01-01 10:00:06,000 INFO: Validation DIV2K_x4
\t # psnr: 28.0000\tBest: 28.0000 @ 100 iter

2024-01-01 10:01:00,000 INFO: [epoch:  1, iter:   1,200, lr:(1.000e-04,)] [eta: 0:50:00] l_pix: 9.0e-02
2024-01-01 10:01:05,000 INFO: Validation Set5
\t # psnr: 30.5000\tBest: 30.5000 @ 1200 iter
\t # ssim: 0.8100\tBest: 0.8100 @ 1200 iter
"""


def test_plot_curves_from_logs(tmp_path, capsys):
    for name, shift in (('runA', 0.0), ('runB', 0.2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'train_runA_20240101.log').write_text(LOG.replace('30.5000', f'{30.5 + shift:.4f}'))
    png = tmp_path / 'curves.png'
    runs = plot_curves.run(
        [str(tmp_path / 'runA'), str(tmp_path / 'runB' / 'train_runA_20240101.log'), '-o', str(tmp_path)]
    )
    assert png.is_file() and set(runs) == {'runA', 'runB'}
    assert runs['runA'][('Set5', 'psnr')] == {100: 30.1, 1200: 30.5}
    assert runs['runB'][('Set5', 'psnr')][1200] == pytest.approx(30.7)
    assert runs['runA'][('DIV2K_x4', 'psnr')] == {100: 28.0}
    assert 'curves.png exists' in _error(capsys, plot_curves.run, [str(tmp_path / 'runA'), '-o', str(tmp_path)])
    (tmp_path / 'empty').mkdir()
    assert 'empty' in _error(capsys, plot_curves.run, [str(tmp_path / 'empty'), '-o', str(tmp_path), '--name', 'x.png'])
    # -o is a folder for every tool that writes images: a PNG name there is one line pointing at --name
    msg = _error(capsys, plot_curves.run, [str(tmp_path / 'runA'), '-o', str(tmp_path / 'new.png')])
    assert msg == f'error: -o {tmp_path / "new.png"}: -o is the output folder; name the file with --name'
    assert not (tmp_path / 'new.png').exists()


def test_plot_curves_from_tensorboard_events(tmp_path):
    """BasicSR's tb_logger scalars (``metrics/<dataset>/<metric>``) are read like the text logs."""
    pytest.importorskip('tensorboard')
    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / 'tb_logger' / 'runC'
    writer = SummaryWriter(str(run_dir))
    for step, value in ((100, 29.5), (200, 30.25)):
        writer.add_scalar('metrics/Set5/psnr', value, step)
        writer.add_scalar('losses/l_pix', 0.1, step)  # not a validation metric: ignored
    writer.close()
    runs = plot_curves.run([str(run_dir), '-o', str(tmp_path), '--name', 'tb.png'])
    assert runs['runC'] == {('Set5', 'psnr'): {100: 29.5, 200: 30.25}}
    assert (tmp_path / 'tb.png').is_file()


# ---------------------------------------------------------------------------- kernel_bank
def test_kernel_bank_pngs(env, tmp_path):
    out = tmp_path / 'kb'
    res = kernel_bank.run(
        [
            str(env['imgs'] / 'astro.png'),
            str(env['imgs'] / 'coffee.png'),
            '--weights',
            env['weights'],
            '--lr-scales',
            '1',
            '2',
            '-o',
            str(out),
            '--quiet',
        ]
    )
    names = sorted(os.listdir(out))
    assert names == [
        'bank_histograms.png',
        'bank_kernels.png',
        'choice_map_astro.png',
        'choice_map_coffee.png',
        'selection_frequency.csv',
        'selection_frequency.png',
    ]
    assert res['bank'].shape == (16, 4)
    for per_scale in res['frequencies'].values():
        for freq in per_scale.values():
            assert freq.shape == (16,) and freq.sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- output paths a user can get wrong
def _log_run(root):
    """A run folder holding a training log with validation metrics (input of plot-curves)."""
    run = root / 'run'
    run.mkdir(exist_ok=True)
    (run / 'train_run_20240101.log').write_text(LOG)
    return run


def _writing_tool(env, tool, out):
    """(run function, argv) of a writing tool whose output folder is ``out``."""
    img = str(env['imgs'] / 'astro.png')
    if tool == 'upscale':
        return upscale.run, [img, '--scale', '2', '--weights', env['weights'], '-o', str(out), '--quiet']
    if tool == 'kernel-bank':
        return kernel_bank.run, [img, '--weights', env['weights'], '--lr-scales', '1', '-o', str(out), '--quiet']
    if tool == 'compare':
        return compare.run, ['--model', 'bicubic', '--hr', str(env['hr']), '--scales', '2', '-o', str(out), '--quiet']
    assert tool == 'plot-curves'
    return plot_curves.run, [str(_log_run(env['root'])), '-o', str(out)]


WRITING_TOOLS = ['upscale', 'kernel-bank', 'compare', 'plot-curves']


@pytest.mark.parametrize('tool', WRITING_TOOLS)
def test_output_folder_that_is_a_file(env, tmp_path, capsys, tool):
    """``-o existing_file.png``: one line naming it, exit 2, the file untouched (was a FileExistsError traceback)."""
    out = tmp_path / 'existing_file.png'
    out.write_bytes(b'precious')
    func, argv = _writing_tool(env, tool, out)
    assert _error(capsys, func, argv) == f'error: output folder {out} is an existing file, not a folder'
    assert out.read_bytes() == b'precious' and sorted(os.listdir(tmp_path)) == ['existing_file.png']


@pytest.mark.parametrize('tool', WRITING_TOOLS)
def test_output_folder_that_cannot_be_created(env, tmp_path, capsys, tool):
    """An output folder under a file (was NotADirectoryError/FileExistsError): one line naming both, exit 2."""
    blocker = tmp_path / 'file.png'
    blocker.write_bytes(b'x')
    out = blocker / 'sub'
    func, argv = _writing_tool(env, tool, out)
    expected = f'error: output folder {out} cannot be created: {blocker} is a file, not a folder'
    assert _error(capsys, func, argv) == expected
    assert sorted(os.listdir(tmp_path)) == ['file.png']


def test_output_folder_without_write_permission(env, tmp_path, capsys, monkeypatch):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: answer as the permission bits would for a user
        real_access = os.access

        def access(path, mode, **kwargs):
            if mode & os.W_OK and os.path.abspath(path) == str(locked):
                return False
            return real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, 'access', access)
    try:
        func, argv = _writing_tool(env, 'upscale', locked / 'out')
        assert _error(capsys, func, argv) == (
            f'error: output folder {locked / "out"} cannot be created: no write permission in {locked}'
        )
        func, argv = _writing_tool(env, 'upscale', locked)
        assert _error(capsys, func, argv) == f'error: output folder {locked} is not writable (permission denied)'
    finally:
        locked.chmod(0o700)


def test_upscale_disk_full_leaves_no_partial_png(env, tmp_path, capsys, monkeypatch):
    """ENOSPC while the PNG is written (was an OSError traceback): one line, no .tmp, no final file."""
    from gaussiansr_arch.utils import atomic

    out = tmp_path / 'out'
    func, argv = _writing_tool(env, 'upscale', out)
    th.fill_disk(monkeypatch, atomic)
    assert _error(capsys, func, argv) == f'error: cannot write {out / "astro_x2.png"}: No space left on device'
    assert not out.exists() and not th.hidden_or_tmp(tmp_path)  # the folder made for it is gone too
    # over an existing output (--force): the previous image stays as it was
    monkeypatch.undo()
    written = Path(func(argv)[0])
    before = written.read_bytes()
    th.fill_disk(monkeypatch, atomic)
    assert 'No space left on device' in _error(capsys, func, argv + ['--force'])
    assert written.read_bytes() == before and not th.hidden_or_tmp(tmp_path)


@pytest.mark.parametrize('tool', ['kernel-bank', 'compare', 'plot-curves'])
def test_figure_tools_disk_full_leave_no_partial_file(env, tmp_path, capsys, monkeypatch, tool):
    """ENOSPC when a figure or table is flushed to disk: one line naming it, nothing partial left."""
    out = tmp_path / 'out'
    func, argv = _writing_tool(env, tool, out)
    th.fail_fsync(monkeypatch)
    message = _error(capsys, func, argv)
    assert message.startswith(f'error: cannot write {out}{os.sep}') and message.endswith(': No space left on device')
    assert not out.exists() and not th.hidden_or_tmp(tmp_path)
