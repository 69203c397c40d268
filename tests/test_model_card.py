"""gaussiansr-model-card on a real short training run (tiny GaussianSR through our trainer, seconds on the CPU)."""

import copy
import hashlib
import os
import re
import shlex
import shutil
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network
from skimage import data as skdata

from gaussiansr_arch.toolkit.training_log import TrainingProgress, parse_logs, training_progress
from gaussiansr_arch.tools import convert_weights, model_card, upscale

import train_helpers as th

TOTAL_ITER = 4  # checkpoints and validations at 2 and 4, then BasicSR's end-of-training validation


@pytest.fixture(scope='module')
def run(tmp_path_factory) -> dict:
    """One 4-iteration run of the tiny GaussianSR: net_g_2, net_g_4, net_g_latest; validations at 2, 4 and the end."""
    root = tmp_path_factory.mktemp('card_run')
    tiny = th.make_tiny_data(root / 'data')
    opt = th.train_opt(tiny, 'card', total_iter=TOTAL_ITER, ckpt_freq=2, val_freq=2, model_type='ArbitraryScaleSRModel')
    yml = th.write_yaml(opt, root / 'train_card.yml')
    th.run_entry('train', '-opt', yml, '--root', str(root))
    exp = root / 'experiments' / 'card'
    log = th.read_logs(exp, 'train')
    return {'exp': exp, 'log': log, 'opt': opt}


def _front_matter(text: str) -> tuple[dict, str]:
    """The YAML between the leading ``---`` lines, and the Markdown after it."""
    assert text.startswith('---\n')
    head, body = text[4:].split('\n---\n', 1)
    return yaml.safe_load(head), body


def _error(capsys, argv) -> str:
    return th.tool_error(capsys, model_card.run, argv)


def _copy_run(run, tmp_path) -> Path:
    exp = tmp_path / 'card'
    shutil.copytree(run['exp'], exp)
    return exp


# ---------------------------------------------------------------------------- the card of a real run
def test_card_from_real_run(run, tmp_path):
    out = tmp_path / 'pub' / 'README.md'
    result = model_card.run([str(run['exp']), '-o', str(out)])
    text = out.read_text(encoding='utf-8')
    assert text == result['text']
    meta, body = _front_matter(text)

    # front matter: the Hugging Face keys
    assert meta['license'] == 'apache-2.0' and meta['library_name'] == 'gaussiansr_arch'
    assert meta['pipeline_tag'] == 'image-to-image'
    assert {'super-resolution', 'arbitrary-scale', 'basicsr', 'gaussiansr'} <= set(meta['tags'])
    assert 'datasets' not in meta  # no Hub dataset id given

    # the weights: the latest numbered checkpoint (net_g_4 = net_g_latest), its sha256 and size
    weights = run['exp'] / 'models' / f'net_g_{TOTAL_ITER}.pth'
    assert result['facts'].weights.path == str(weights) and result['facts'].weights.iteration == TOTAL_ITER
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f'| sha256 | `{sha}` |' in body
    assert f'| size | {weights.stat().st_size:,} bytes' in body
    assert '| parameters | the EMA weights (`params_ema`, decay 0.9) |' in body

    # parameter count: the arch built from the run's network_g, and what BasicSR logged for it
    arch_params = sum(p.numel() for p in build_network(copy.deepcopy(th.TINY_NET)).parameters())
    logged = int(re.search(r'Network: GaussianSR, with parameters: ([\d,]+)', run['log']).group(1).replace(',', ''))
    assert result['facts'].parameters == arch_params == logged
    assert f'GaussianSR, **{arch_params:,} parameters**' in body
    assert '`splat_channels: 4` (default 8), `bank_size: 16` (default 100)' in body  # not the paper's model

    # validation figures: exactly those in the log (iterations 2, 4, then the end-of-training pass at 4)
    psnr, ssim = th.metric_values(run['log'], 'psnr'), th.metric_values(run['log'], 'ssim')
    assert len(psnr) == len(ssim) == 3 and psnr[1] == psnr[2] and ssim[1] == ssim[2]
    (result_entry,) = meta['model-index'][0]['results']
    assert result_entry['dataset'] == {'name': 'val_x2', 'type': 'val-x2', 'args': {'scale': 2}}
    values = {m['type']: m['value'] for m in result_entry['metrics']}
    assert values == {'psnr': float(psnr[1]), 'ssim': float(ssim[1])}
    best_psnr = max((float(psnr[0]), 2), (float(psnr[1]), 4), key=lambda p: (p[0], -p[1]))
    assert (
        f'| val_x2 | x2 | PSNR (RGB, crop 2) | {psnr[1]} | {psnr[1]} (4) | {best_psnr[0]:.4f} ({best_psnr[1]}) |'
        in body
    )
    rows = result['facts'].rows
    assert [(r.metric, r.last_iter) for r in rows] == [('psnr', 4), ('ssim', 4)]  # not BasicSR's '@ 6 iter'

    # training data and schedule from the YAML
    assert '`ArbitraryScaleImageDataset`' in body and 's ~ U(1, 2) per sample' in body
    assert '| batch | 2 per process x 1 process = 2 |' in body
    assert '| optimiser | Adam, lr 0.001, weight_decay 0, betas [0.9, 0.99] |' in body
    assert '| lr schedule | MultiStepLR, milestones [2, 4], gamma 0.5 |' in body
    assert '| iterations | 4 planned; these weights: 4 |' in body
    assert '| mixed precision (`train.amp`) | off (fp32) |' in body
    # reproduce and limitations
    assert '\ngaussiansr-train -opt train_card.yml\n' in body
    assert f'The run was started with `gaussiansr-train -opt {run["exp"].parent.parent / "train_card.yml"}`' in body
    assert 'trains 2,000,000 iterations' in body and '0.0002 % of that schedule' in body


def test_usage_commands_of_the_card_run(run, tmp_path, monkeypatch):
    """The card's Python snippet and its gaussiansr-upscale command run as written, next to the weights."""
    text = model_card.run([str(run['exp']), '-o', str(tmp_path / 'README.md')])['text']
    shutil.copy(run['exp'] / 'models' / f'net_g_{TOTAL_ITER}.pth', tmp_path)
    cv2.imwrite(str(tmp_path / 'photo.png'), skdata.astronaut()[100:120, 180:210, ::-1])  # 20x30
    monkeypatch.chdir(tmp_path)
    snippet = re.search(r'```python\n(.*?)```', text, re.S).group(1)
    assert len([line for line in snippet.splitlines() if line.strip()]) == 6  # imports + the five lines
    exec(compile(snippet, 'card_snippet', 'exec'), {})
    assert cv2.imread('photo_sr.png').shape == (74, 111, 3)  # round(20 x 3.7), round(30 x 3.7)
    command = next(line for line in text.splitlines() if line.startswith('gaussiansr-upscale photo.png'))
    written = upscale.run([*shlex.split(command)[1:], '--quiet'])
    assert [os.path.basename(p) for p in written] == ['photo_x3.7.png']
    assert cv2.imread(written[0]).shape == (74, 111, 3)


def test_card_of_converted_safetensors_finds_its_iteration(run, tmp_path):
    """--weights a converted file: the iteration is found by its parameters, the figures are those at it."""
    weights = tmp_path / 'card_x2.safetensors'
    convert_weights.convert(str(run['exp'] / 'models' / 'net_g_2.pth'), str(weights))
    result = model_card.run(
        [str(run['exp']), '--weights', str(weights), '-o', str(tmp_path / 'README.md'), '--dataset-id', 'me/tiny']
    )
    facts = result['facts']
    assert (
        facts.weights.iteration == 2 and facts.weights.iteration_source == 'the same parameters as models/net_g_2.pth'
    )
    meta, body = _front_matter(result['text'])
    assert meta['datasets'] == ['me/tiny']
    values = {m['type']: m['value'] for m in meta['model-index'][0]['results'][0]['metrics']}
    assert values == {
        'psnr': float(th.metric_values(run['log'], 'psnr')[0]),
        'ssim': float(th.metric_values(run['log'], 'ssim')[0]),
    }
    assert f'| sha256 | `{hashlib.sha256(weights.read_bytes()).hexdigest()}` |' in body
    assert '`card_x2.safetensors` (safetensors)' in body
    assert "gaussiansr_arch.load_model('card_x2.safetensors', device='cpu')" in body
    assert 'of the 4 its options planned' in body

    misnamed = tmp_path / 'net_g_4.pth'  # outside the run's models/ a name proves nothing: found by content
    shutil.copy(run['exp'] / 'models' / 'net_g_2.pth', misnamed)
    facts = model_card.run([str(run['exp']), '--weights', str(misnamed), '-o', str(tmp_path / 'm.md')])['facts']
    assert facts.weights.iteration == 2

    untrained = tmp_path / 'untrained.pth'  # fits the arch, equal to no checkpoint: no figures claimed for it
    torch.save({'params': build_network(dict(th.TINY_NET)).state_dict(), 'network_g': dict(th.TINY_NET)}, untrained)
    result = model_card.run([str(run['exp']), '--weights', str(untrained), '-o', str(tmp_path / 'u.md')])
    meta, body = _front_matter(result['text'])
    assert result['facts'].weights.iteration is None and 'model-index' not in meta
    assert '| iteration | unknown: equal to no numbered checkpoint of the run |' in body
    assert '| val_x2 | x2 | PSNR (RGB, crop 2) | not validated |' in body
    assert "The iteration of these weights is unknown; the run's logs reach iteration 4." in body


def test_default_weights_pick_latest_iteration_and_safetensors(tmp_path):
    models = tmp_path / 'models'
    models.mkdir()
    for name in ('net_g_2.pth', 'net_g_10.pth', 'net_g_10.safetensors', 'net_g_latest.pth', 'net_g_x.pth'):
        (models / name).write_bytes(b'')
    found = model_card.checkpoints(str(tmp_path))
    assert found == {
        2: str(models / 'net_g_2.pth'),
        10: str(models / 'net_g_10.safetensors'),
        'latest': str(models / 'net_g_latest.pth'),
    }
    folder = model_card.RunFolder(str(tmp_path), 'x.yml', {'train': {'total_iter': 12}}, [])
    ended = TrainingProgress(last_iter=12, ended=True)
    assert model_card.default_weights(folder, ended) == (str(models / 'net_g_latest.pth'), 12)
    folder.opt['train']['total_iter'] = 10  # latest = net_g_10: the numbered file names its iteration
    assert model_card.default_weights(folder, ended) == (str(models / 'net_g_10.safetensors'), 10)
    assert model_card.default_weights(folder, TrainingProgress(last_iter=11)) == (
        str(models / 'net_g_10.safetensors'),
        10,
    )


def test_validation_best_follows_metric_direction_and_resumed_logs(tmp_path):
    """Two logs of one resumed run merge in launch order; 'best' of a better: lower metric is its minimum."""
    first = (
        'INFO: World size (gpu number): 2\n'
        'INFO: [r..][epoch:  0, iter:     100, lr:(1.0e-04,)] l_pix: 1\n'
        'INFO: Validation Set5\n'
        '\t # psnr: 30.0000\tBest: 30.0000 @ 100 iter\n\t # lpips: 0.3000\tBest: 0.3000 @ 100 iter\n'
        'INFO: [r..][epoch:  0, iter:     200, lr:(1.0e-04,)] l_pix: 1\n'
        'INFO: Validation Set5\n'
        '\t # psnr: 31.0000\tBest: 31.0000 @ 200 iter\n\t # lpips: 0.2000\tBest: 0.2000 @ 200 iter\n'
    )
    second = (
        'INFO: Resuming training from epoch: 0, iter: 200.\n'
        'INFO: [r..][epoch:  0, iter:     300, lr:(1.0e-04,)] l_pix: 1\n'
        'INFO: Validation Set5\n'
        '\t # psnr: 30.5000\tBest: 31.0000 @ 200 iter\n\t # lpips: 0.2500\tBest: 0.2000 @ 200 iter\n'
        'INFO: End of training. Time consumed: 0:01:00\n'
    )
    # the later launch is named later but written first: the name's time orders them, not the mtime
    (tmp_path / 'train_r_20260102_000000.log').write_text(second)
    (tmp_path / 'train_r_20260101_000000.log').write_text(first)
    logs = [str(p) for p in sorted(tmp_path.glob('train_*.log'))]
    curves = parse_logs(logs)
    assert curves[('Set5', 'psnr')] == {100: 30.0, 200: 31.0, 300: 30.5}
    assert training_progress(logs) == TrainingProgress(last_iter=300, ended=True, world_size=2)
    opt = {
        'datasets': {'val_1': {'name': 'Set5', 'scale': 4}},
        'val': {'metrics': {'psnr': {'crop_border': 4, 'test_y_channel': True}, 'lpips': {'better': 'lower'}}},
    }
    rows = {r.metric: r for r in model_card.validation_rows(curves, opt, 300)}
    assert (rows['psnr'].best, rows['psnr'].best_iter, rows['psnr'].last, rows['psnr'].at_weights) == (
        31.0,
        200,
        30.5,
        30.5,
    )
    assert rows['psnr'].protocol == 'Y channel, crop 4' and rows['psnr'].scale == 4
    assert (rows['lpips'].best, rows['lpips'].best_iter) == (0.2, 200)


# ---------------------------------------------------------------------------- errors and outputs
def test_bad_run_folders_are_one_line(run, tmp_path, capsys):
    out = tmp_path / 'README.md'
    assert (
        _error(capsys, [str(tmp_path / 'nope'), '-o', str(out)])
        == f'error: run folder {tmp_path / "nope"}: no such folder'
    )
    a_file = tmp_path / 'file.txt'
    a_file.write_text('x')
    assert 'is a file' in _error(capsys, [str(a_file), '-o', str(out)])

    exp = _copy_run(run, tmp_path)
    (exp / 'models' / 'net_g_4.pth').unlink()
    (exp / 'models' / 'net_g_2.pth').unlink()
    (exp / 'models' / 'net_g_latest.pth').unlink()
    assert _error(capsys, [str(exp), '-o', str(out)]) == (
        f'error: run folder {exp}: no weights (models/net_g_<iter>.pth or .safetensors) inside; pass --weights'
    )
    assert 'does not exist' in _error(capsys, [str(exp), '-o', str(out), '--weights', str(tmp_path / 'w.pth')])
    other = tmp_path / 'other.pth'  # another arch's weights: the one mismatch report
    torch.save({'params': build_network(dict(th.TINY_NET, bank_size=9)).state_dict()}, other)
    message = _error(capsys, [str(exp), '-o', str(out), '--weights', str(other)])
    assert message.startswith(
        f'error: weights file {other} does not fit GaussianSR of options file {exp / "train_card.yml"}'
    )
    recorded = tmp_path / 'recorded.pth'  # records another network_g than the run's
    torch.save(
        {'params': build_network(dict(th.TINY_NET)).state_dict(), 'network_g': dict(th.TINY_NET, tau=2.0)}, recorded
    )
    assert 'records a network_g different from' in _error(
        capsys, [str(exp), '-o', str(out), '--weights', str(recorded)]
    )

    for log in exp.glob('train_*.log'):
        log.unlink()
    assert (
        _error(capsys, [str(exp), '-o', str(out)]) == f'error: run folder {exp}: no training log (train_*.log) inside'
    )
    (exp / 'train_card.yml').unlink()
    assert _error(capsys, [str(exp), '-o', str(out)]) == (
        f'error: run folder {exp}: no options file (*.yml) inside (BasicSR copies the training YAML)'
    )
    (exp / 'broken.yml').write_text('name: [unclosed\n')
    assert _error(capsys, [str(exp), '-o', str(out)]).startswith(
        f'error: options file {exp / "broken.yml"}: cannot parse YAML'
    )
    assert not out.exists()


def test_existing_output_needs_force(run, tmp_path, capsys):
    out = tmp_path / 'README.md'
    out.write_text('precious')
    assert (
        _error(capsys, [str(run['exp']), '-o', str(out)]) == f'error: output {out} exists; pass --force to overwrite it'
    )
    assert out.read_text() == 'precious'
    model_card.run([str(run['exp']), '-o', str(out), '--force'])
    assert out.read_text().startswith('---\nlicense: apache-2.0\n')
    assert capsys.readouterr().err.startswith(f'wrote {out}: GaussianSR, 93,667 parameters, net_g_4.pth')
    blocker = tmp_path / 'blocker'
    blocker.write_text('x')
    message = _error(capsys, [str(run['exp']), '-o', str(blocker / 'sub' / 'README.md')])
    assert message == f'error: output folder {blocker / "sub"} cannot be created: {blocker} is a file, not a folder'


def test_default_output_in_run_folder_and_no_partial_file_on_failure(run, tmp_path, capsys, monkeypatch):
    exp = _copy_run(run, tmp_path)
    th.fail_fsync(monkeypatch)  # a disk that fills up when the card is flushed
    message = _error(capsys, [str(exp)])
    assert message == f'error: cannot write {exp / "README.md"}: No space left on device'
    assert not (exp / 'README.md').exists() and not th.hidden_or_tmp(tmp_path)
    monkeypatch.undo()
    model_card.run([str(exp)])
    capsys.readouterr()
    before = (exp / 'README.md').read_bytes()
    th.fail_fsync(monkeypatch)
    assert 'No space left on device' in _error(capsys, [str(exp), '--force', '--license', 'mit'])
    assert (exp / 'README.md').read_bytes() == before and not th.hidden_or_tmp(tmp_path)
