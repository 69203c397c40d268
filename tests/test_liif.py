"""LIIF / MetaSR archs and the official-checkpoint converter.

The parity tests need ``../shared/reference/liif`` (official checkpoint + official outputs) and
skip cleanly without it. The whole file takes ~40 s of CPU time (2 cores), mostly the parity
renders, which are computed once and shared by the parity and test-pipeline tests.
"""

import json
import logging
import math
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import gaussiansr_arch
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.archs.liif_arch import LIIF
from gaussiansr_arch.tools import convert_liif

import train_helpers as th

REPO_ROOT = Path(__file__).resolve().parents[1]
LIIF_REF = REPO_ROOT.parent / 'shared' / 'reference' / 'liif'
CASES = json.loads((LIIF_REF / 'outputs' / 'cases.json').read_text()) if LIIF_REF.is_dir() else []
TINY = {'encoder_opt': {'num_feat': 8, 'num_block': 1}, 'hidden': [16, 16]}


def _need_reference() -> None:
    if not (LIIF_REF / 'edsr-baseline-liif.pth').is_file():
        pytest.skip(f'{LIIF_REF} is absent')


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB from a PNG (OpenCV reads BGR)."""
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1) / 255.0).unsqueeze(0)


def psnr_y(sr_rgb: np.ndarray, hr_rgb: np.ndarray, scale: float) -> float:
    """BasicSR PSNR as the test pipeline computes it (8-bit BGR, Y, crop ceil(scale))."""
    from basicsr.metrics import calculate_psnr

    sr = (np.clip(sr_rgb, 0, 1) * 255.0).round().astype(np.uint8)[..., ::-1]
    return calculate_psnr(sr, hr_rgb[..., ::-1], crop_border=math.ceil(scale), test_y_channel=True)


@pytest.fixture(scope='module')
def official_weights(tmp_path_factory) -> Path:
    """The official checkpoint converted to a BasicSR weights file."""
    _need_reference()
    dst = tmp_path_factory.mktemp('liif') / 'LIIF_EDSR-baseline_official.pth'
    assert convert_liif.main([str(LIIF_REF / 'edsr-baseline-liif.pth'), str(dst)]) == 0
    return dst


@pytest.fixture(scope='module')
def parity_outputs(official_weights) -> dict:
    """Our LIIF's output (HxWx3 float RGB, unclamped) for every reference case, rendered once."""
    net = gaussiansr_arch.load_model(str(official_weights))
    outputs = {}
    with torch.no_grad():
        for case in CASES:
            lq = to_tensor(read_rgb(LIIF_REF / 'outputs' / f'{case["case"]}_lr.png'))
            sr = net.upscale(lq, size=tuple(case['out_size']), chunk_size=300000)  # large chunk: fastest
            outputs[case['case']] = sr[0].permute(1, 2, 0).numpy()
    return outputs


@pytest.mark.parametrize('case', [c['case'] for c in CASES] or ['no-reference'])
def test_parity_with_official_outputs(case, parity_outputs):
    official = np.load(LIIF_REF / 'outputs' / f'{case}_liif.npz')['sr']
    ours = np.clip(parity_outputs[case], 0, 1)
    assert ours.shape == official.shape
    assert np.abs(ours - official).max() <= 1e-4


def test_converted_file_records_network_g(official_weights):
    data = torch.load(official_weights, map_location='cpu', weights_only=True)
    assert data['network_g'] == {
        'type': 'LIIF',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 64, 'num_block': 16, 'res_scale': 1.0},
        'hidden': [256] * 4,
        'feat_unfold': True,
        'local_ensemble': True,
        'cell_decode': True,
    }
    assert data['source'] == {'file': 'edsr-baseline-liif.pth', 'epoch': 1000}


# ---------------------------------------------------------------- interface on tiny models
# Chunk invariance of LIIF and MetaSR: tests/test_contract.py (every registered method).
def test_upscale_equals_forward_at_pixel_centres():
    net = LIIF(**TINY).eval()
    lq = torch.rand(1, 3, 8, 10)
    size = (21, 27)  # non-integer ratios: no query lies on an LR pixel centre (see coordinates.axis_coord)
    coord = make_coord(size).unsqueeze(0)
    cell = make_cell(size, coord.shape[1]).unsqueeze(0)
    with torch.no_grad():
        image = net.upscale(lq, size=size, chunk_size=50)
        points = net(lq, coord, cell)
    assert torch.allclose(image.flatten(2).transpose(1, 2), points, atol=1e-5)


@pytest.mark.parametrize('feat_unfold', [True, False])
@pytest.mark.parametrize('local_ensemble', [True, False])
@pytest.mark.parametrize('cell_decode', [True, False])
def test_liif_toggles_run_and_train(feat_unfold, local_ensemble, cell_decode):
    net = LIIF(**TINY, feat_unfold=feat_unfold, local_ensemble=local_ensemble, cell_decode=cell_decode)
    lq = torch.rand(2, 3, 6, 7)
    coord = torch.rand(2, 50, 2) * 2 - 1
    cell = torch.full((2, 50, 2), 2 / 15)
    out = net(lq, coord, cell)
    assert out.shape == (2, 50, 3) and torch.isfinite(out).all()
    out.mean().backward()
    assert net.encoder.conv_first.weight.grad is not None and net.imnet[0].weight.grad is not None


# ---------------------------------------------------------------- converter
def fake_official(tmp_path: Path, name: str = 'liif', extra: dict | None = None, file: str = 'official.pth') -> Path:
    """A tiny checkpoint with the official layout (EDSR-baseline 8 ch, 1 block; MLP [16])."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        'encoder.sub_mean.weight': (3, 3, 1, 1),
        'encoder.head.0.weight': (8, 3, 3, 3),
        'encoder.head.0.bias': (8,),
        'encoder.body.0.body.0.weight': (8, 8, 3, 3),
        'encoder.body.0.body.0.bias': (8,),
        'encoder.body.0.body.2.weight': (8, 8, 3, 3),
        'encoder.body.0.body.2.bias': (8,),
        'encoder.body.1.weight': (8, 8, 3, 3),
        'encoder.body.1.bias': (8,),
        'imnet.layers.0.weight': (16, 8 * 9 + 4),
        'imnet.layers.0.bias': (16,),
        'imnet.layers.2.weight': (3, 16),
        'imnet.layers.2.bias': (3,),
    }
    sd = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    sd.update(extra or {})
    args = {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}},
    }
    path = tmp_path / file
    torch.save({'model': {'name': name, 'args': args, 'sd': sd}, 'epoch': 3}, path)
    return path


def test_converter_round_trip_and_encoder_only(tmp_path):
    src = fake_official(tmp_path)
    dst, enc = tmp_path / 'out' / 'liif.pth', tmp_path / 'enc.pth'
    assert convert_liif.main([str(src), str(dst)]) == 0
    net = gaussiansr_arch.load_model(str(dst))
    official_sd = torch.load(src, weights_only=True)['model']['sd']
    assert torch.equal(net.encoder.body[0].conv2.weight, official_sd['encoder.body.0.body.2.weight'])
    assert torch.equal(net.encoder.conv_after_body.bias, official_sd['encoder.body.1.bias'])

    assert convert_liif.main([str(src), str(enc), '--encoder-only']) == 0
    data = torch.load(enc, weights_only=True)
    assert set(data) == {'params', 'encoder', 'source'} and all(k.startswith('encoder.') for k in data['params'])
    gsr = GaussianSR(encoder_opt=data['encoder']['encoder_opt'], splat_channels=4, bank_size=4, decoder_hidden=[8])
    missing, unexpected = gsr.load_state_dict(data['params'], strict=False)
    assert not unexpected and not any(k.startswith('encoder.') for k in missing)
    assert torch.equal(gsr.encoder.conv_first.weight, official_sd['encoder.head.0.weight'])


def _exit_code(main, argv) -> int:
    """The exit status of a tool whose run ends in SystemExit (user errors: 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('gaussiansr-convert-liif: error:')
    return err


def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr and exit status 2, as for every tool."""
    src, dst = fake_official(tmp_path), tmp_path / 'liif.pth'
    assert _exit_code(convert_liif.main, [str(tmp_path / 'missing.pth'), str(dst)]) == 2
    assert 'does not exist' in _error_line(capsys)

    basicsr_file = tmp_path / 'basicsr.pth'
    torch.save({'params': {'conv.weight': torch.zeros(1)}}, basicsr_file)
    assert _exit_code(convert_liif.main, [str(basicsr_file), str(dst)]) == 2
    assert 'not a LIIF checkpoint' in _error_line(capsys)

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    assert _exit_code(convert_liif.main, [str(garbage), str(dst)]) == 2
    assert f'input checkpoint {garbage} cannot be loaded (truncated or not a PyTorch checkpoint)' in _error_line(capsys)

    odd = fake_official(tmp_path, extra={'imnet.extra.weight': torch.zeros(1)}, file='odd.pth')
    assert _exit_code(convert_liif.main, [str(odd), str(dst)]) == 2
    assert "unexpected key(s) ['imnet.extra.weight']" in _error_line(capsys)
    assert not dst.exists()

    assert convert_liif.main([str(src), str(dst)]) == 0
    before = dst.read_bytes()
    capsys.readouterr()
    assert _exit_code(convert_liif.main, [str(src), str(dst)]) == 2
    assert '--force' in _error_line(capsys) and dst.read_bytes() == before
    assert convert_liif.main([str(src), str(dst), '--force']) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []  # no temp file left


def test_converter_output_paths(tmp_path, capsys, monkeypatch):
    """An output folder under a file, or a disk that fills up: one line naming the output, nothing partial."""
    from gaussiansr_arch.utils import checkpoint

    src = fake_official(tmp_path)
    blocker = tmp_path / 'file.pth'
    blocker.write_bytes(b'x')
    assert _exit_code(convert_liif.main, [str(src), str(blocker / 'sub' / 'liif.pth')]) == 2
    assert _error_line(capsys) == (
        f'gaussiansr-convert-liif: error: output folder {blocker / "sub"} cannot be '
        f'created: {blocker} is a file, not a folder'
    )
    dst = tmp_path / 'out' / 'liif.pth'
    th.fill_disk(monkeypatch, checkpoint)  # atomic_torch_save's file
    assert _exit_code(convert_liif.main, [str(src), str(dst)]) == 2
    assert _error_line(capsys) == f'gaussiansr-convert-liif: error: cannot write {dst}: No space left on device'
    assert not dst.parent.exists() and not th.hidden_or_tmp(tmp_path)


# ---------------------------------------------------------------- BasicSR test pipeline
def test_test_pipeline_reports_direct_psnr(official_weights, parity_outputs, tmp_path):
    if not (REPO_ROOT / 'gaussiansr_arch' / 'test.py').is_file():
        pytest.skip('gaussiansr_arch/test.py is absent')
    if not (REPO_ROOT / 'gaussiansr_arch' / 'data' / 'arbitrary_scale_dataset.py').is_file():
        pytest.skip('the datasets module is absent')
    import skimage.data

    from gaussiansr_arch.test import main as test_main

    case = next(c for c in CASES if c['case'] == 'chelsea_x3')
    h, w = case['out_size']
    hr = skimage.data.chelsea()[:h, :w]
    (tmp_path / 'hr').mkdir()
    (tmp_path / 'lr').mkdir()
    cv2.imwrite(str(tmp_path / 'hr' / 'chelsea.png'), hr[..., ::-1])
    shutil.copy(LIIF_REF / 'outputs' / 'chelsea_x3_lr.png', tmp_path / 'lr' / 'chelsea.png')
    opt = {
        'name': 'test_liif_parity',
        'model_type': 'ArbitraryScaleSRModel',
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'test_1': {
                'name': 'chelsea_x3',
                'type': 'ArbitraryScalePairedDataset',
                'dataroot_gt': str(tmp_path / 'hr'),
                'dataroot_lq': str(tmp_path / 'lr'),
                'io_backend': {'type': 'disk'},
                'scale': 3,
            }
        },
        'network_g': {'type': 'LIIF'},
        'path': {'pretrain_network_g': str(official_weights), 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {
            'save_img': False,
            'chunk_size': 300000,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 3, 'test_y_channel': True}},
        },
    }
    opt_path = tmp_path / 'test.yml'
    opt_path.write_text(yaml.safe_dump(opt))

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    # Another test may have created the 'basicsr' logger first (BasicSR then never raises it
    # to INFO): capture at INFO whatever the test order.
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        test_main(['-opt', str(opt_path), '--root', str(tmp_path / 'root')])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    found = re.findall(r'# psnr: ([0-9.]+)', '\n'.join(messages))
    assert found, 'the test pipeline logged no PSNR'
    direct = psnr_y(parity_outputs['chelsea_x3'], hr, 3)
    assert abs(float(found[-1]) - direct) < 1e-4


def test_liif_image_skip_is_off_by_default_and_adds_the_image():
    """LIIF's optional skip (for comparisons with GaussianSR's skip variant) changes one thing."""
    assert LIIF().image_skip == 'none'
    torch.manual_seed(0)
    plain, skipped = LIIF(**TINY).eval(), LIIF(**TINY, image_skip='bilinear').eval()
    skipped.load_state_dict(plain.state_dict())
    lq = torch.rand(1, 3, 5, 6)
    coord = make_coord((9, 11)).unsqueeze(0)
    cell = make_cell((9, 11), coord.shape[1]).unsqueeze(0)
    image = torch.nn.functional.grid_sample(
        (lq - 0.5) / 0.5, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border', align_corners=False
    )[:, :, 0].transpose(1, 2)
    with torch.no_grad():
        diff = skipped(lq, coord, cell) - plain(lq, coord, cell)
    assert (diff - 0.5 * image).abs().max().item() <= 1e-5
