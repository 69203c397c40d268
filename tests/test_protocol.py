"""The evaluation protocol module (gaussiansr_arch/data/protocol.py): one definition, used everywhere.

The papers' protocols (liif, gsasr, continuoussr) are pinned on a real Set5 image (../shared, skipped
when absent) against the official rules computed here independently: BasicSR's MATLAB ``imresize``,
torchvision + PIL exactly as the official ``resize_fn``, and a plain PSNR on the Y channel with the
official crop.
"""

import dataclasses
import math
import shutil

import cv2
import numpy as np
import pytest

from gaussiansr_arch.data import arbitrary_scale_dataset, protocol
from gaussiansr_arch.tools import compare, kernel_bank
from gaussiansr_arch.tools.common import ToolError
from gaussiansr_arch.utils.image_io import imresize_to

from train_helpers import tool_error


def test_dataset_module_reexports_the_protocol():
    assert arbitrary_scale_dataset.make_lr is protocol.make_lr
    assert arbitrary_scale_dataset.hr_crop_and_lr_size is protocol.hr_crop_and_lr_size
    assert arbitrary_scale_dataset.LR_DEGRADATIONS is protocol.LR_DEGRADATIONS


def test_uint8_rounding_is_clip_round():
    x = np.random.default_rng(0).uniform(-0.2, 1.2, (16, 16, 3)).astype(np.float32)
    x.flat[:2] = [np.inf, -np.inf]
    expected = (np.clip(x, 0, 1) * 255.0).round().astype(np.uint8)
    np.testing.assert_array_equal(protocol.to_uint8(x), expected)
    q = protocol.quantize(x)
    assert q.dtype == np.float32
    np.testing.assert_array_equal(q, protocol.to_float(expected))


def test_make_lr_uint8_is_make_lr_rounded():
    hr = np.random.default_rng(1).integers(0, 256, (30, 27, 3), dtype=np.uint8)
    for degradation in protocol.LR_DEGRADATIONS:
        lr = protocol.make_lr(protocol.to_float(hr), (12, 10), degradation)
        np.testing.assert_array_equal(protocol.make_lr_uint8(hr, (12, 10), degradation), np.round(lr * 255))


def test_lr_size_matches_is_floor_of_hr():
    for s in (2, 3, 2.4, 3.6):
        for h in range(5, 80):
            for lv in range(0, 40):
                assert protocol.lr_size_matches((h,), (lv,), s) == (lv == math.floor(h / s + 1e-9)), (s, h, lv)
    assert protocol.lr_size_for((480, 500), 2.4) == (200, 208)
    assert protocol.hr_crop_for_lr((27, 41), 3.6) == (97, 148)


def test_metric_options_per_family_and_protocol():
    assert protocol.metric_options(2.4) == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 3, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 3, 'test_y_channel': True},
    }
    assert protocol.metric_options(4, 'div2k') == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 10, 'test_y_channel': False}
    }
    assert protocol.metric_options(12, 'div2k', 'gsasr') == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 8, 'test_y_channel': True}
    }
    assert protocol.metric_options(12, 'benchmark', 'continuoussr')['ssim']['crop_border'] == 12
    assert protocol.crop_border(3.0000000000001) == 3
    with pytest.raises(ValueError, match='family must be one of benchmark, div2k'):
        protocol.metric_options(2, 'Set5')


# ---------------------------------------------------------------------------- the papers' protocols
def test_protocol_registry_and_unknown_name():
    assert list(protocol.PROTOCOLS) == ['liif', 'gsasr', 'continuoussr']
    for name, proto in protocol.PROTOCOLS.items():
        assert protocol.get_protocol(name) is proto and proto.name == name
        assert protocol.get_protocol(proto) is proto
        assert proto.source and proto.title and proto.official_psnr
        with pytest.raises(dataclasses.FrozenInstanceError):
            proto.pil_from = 1.0
    with pytest.raises(ValueError) as err:
        protocol.get_protocol('LIIF')
    assert str(err.value) == "unknown protocol 'LIIF': choose one of liif, gsasr, continuoussr"


def test_protocol_rules_per_scale():
    liif, gsasr, csr = (protocol.get_protocol(n) for n in ('liif', 'gsasr', 'continuoussr'))
    rules = {  # scale: (reads LR files, degradation) for liif, gsasr, continuoussr
        2: ((True, 'matlab'), (False, 'matlab'), (False, 'pil')),
        4: ((True, 'matlab'), (False, 'matlab'), (False, 'pil')),
        2.4: ((False, 'matlab'), (False, 'matlab'), (False, 'pil')),
        6: ((False, 'pil'), (False, 'matlab'), (False, 'pil')),
        30: ((False, 'pil'), (False, 'matlab'), (False, 'pil')),
    }
    for s, expected in rules.items():
        got = tuple((p.reads_lr_files(s), p.lr_degradation(s)) for p in (liif, gsasr, csr))
        assert got == expected, s
    # crop borders: benchmarks / DIV2K-val
    assert [liif.crop_border(s) for s in (2, 3.6, 12, 30)] == [2, 4, 12, 30]
    assert [liif.crop_border(s, 'div2k') for s in (2, 12)] == [8, 18]
    assert [gsasr.crop_border(s) for s in (2, 3.6, 8, 12, 30)] == [2, 4, 8, 8, 8]
    assert [gsasr.crop_border(s, 'div2k') for s in (4, 12)] == [4, 8]
    assert [csr.crop_border(s) for s in (4, 12)] == [4, 12] and csr.crop_border(4, 'div2k') == 10
    assert [(p.test_y_channel(), p.test_y_channel('div2k')) for p in (liif, gsasr, csr)] == [
        (True, False),
        (True, True),
        (True, False),
    ]
    assert protocol.dataset_family('DIV2K-val') == protocol.dataset_family('div2k100') == 'div2k'
    assert protocol.dataset_family('Set5') == 'benchmark'


def test_paired_dataset_follows_and_checks_its_protocol(tmp_path):
    hr = np.random.default_rng(4).integers(0, 256, (50, 47, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), hr[:, :, ::-1])
    ds_cls = arbitrary_scale_dataset.ArbitraryScalePairedDataset
    for name, scale, degradation in (
        ('liif', 8, 'pil'),
        ('liif', 2.4, 'matlab'),
        ('gsasr', 8, 'matlab'),
        ('continuoussr', 2, 'pil'),
    ):
        ds = ds_cls({'dataroot_gt': str(tmp_path), 'scale': scale, 'protocol': name})
        assert ds.lr_degradation == degradation, (name, scale)
        lr, crop = protocol.get_protocol(name).make_pair(hr, scale)
        np.testing.assert_array_equal(np.round(ds[0]['lq'].permute(1, 2, 0).numpy() * 255), lr)
        np.testing.assert_array_equal(np.round(ds[0]['gt'].permute(1, 2, 0).numpy() * 255), crop)
    with pytest.raises(ValueError) as err:
        ds_cls({'dataroot_gt': str(tmp_path), 'scale': 4, 'protocol': 'gsasr', 'dataroot_lq': str(tmp_path)})
    assert str(err.value) == (
        'ArbitraryScalePairedDataset: protocol gsasr makes the LR from the HR at x4 (matlab bicubic): drop dataroot_lq'
    )
    with pytest.raises(ValueError) as err:
        ds_cls({'dataroot_gt': str(tmp_path), 'scale': 6, 'protocol': 'liif', 'lr_degradation': 'matlab'})
    assert str(err.value) == (
        'ArbitraryScalePairedDataset: protocol liif makes the LR by pil bicubic at x6, not lr_degradation matlab'
    )
    with pytest.raises(ValueError) as err:
        ds_cls({'dataroot_gt': str(tmp_path), 'scale': 6, 'protocol': 'PIL'})
    assert str(err.value) == (
        "ArbitraryScalePairedDataset: option protocol: unknown protocol 'PIL': choose one of liif, gsasr, continuoussr"
    )


# Real image, official rules computed independently --------------------------------------------
def _official_matlab_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """BasicSR's MATLAB imresize by 1/scale of an HR cropped to a multiple of the scale (GSASR; the
    set's LR files at x2-x4 for LIIF), rounded to 8 bits."""
    from basicsr.utils.matlab_functions import imresize

    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    out = imresize(hr[:h, :w].astype(np.float64) / 255.0, 1 / scale)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _official_pil_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The official resize_fn (LIIF, ContinuousSR): ToTensor, ToPILImage, Resize(BICUBIC), ToTensor
    with torchvision, of the HR cropped to round(floor(H / s) * s)."""
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    h_lr, w_lr = math.floor(hr.shape[0] / scale + 1e-9), math.floor(hr.shape[1] / scale + 1e-9)
    img = transforms.ToTensor()(Image.fromarray(hr))[:, : round(h_lr * scale), : round(w_lr * scale)]
    lr = transforms.ToTensor()(transforms.Resize((h_lr, w_lr), InterpolationMode.BICUBIC)(transforms.ToPILImage()(img)))
    return np.round(lr.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def _psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """PSNR on the Y channel as LIIF's utils.calc_psnr writes it (BT.601 luma of the difference)."""
    diff = (sr.astype(np.float64) - hr.astype(np.float64)) / 255.0
    y = diff @ (np.array([65.738, 129.057, 25.064]) / 256.0)
    valid = y[shave:-shave, shave:-shave]
    return float(-10.0 * np.log10(np.mean(valid**2)))


# (protocol, scale): official LR rule, official crop, pinned PSNR (dB) of MATLAB-bicubic upscaling of
# that LR on Set5 baby.png (measured with this code; a change means the protocol changed).
OFFICIAL = {
    ('liif', 4): ('matlab', 4, 31.786740),
    ('liif', 12): ('pil', 12, 25.503575),
    ('gsasr', 4): ('matlab', 4, 31.786740),
    ('gsasr', 12): ('matlab', 8, 25.451189),
    ('continuoussr', 4): ('pil', 4, 31.785246),
    ('continuoussr', 12): ('pil', 12, 25.503575),
}


@pytest.fixture
def set5(shared_dir):
    folder = shared_dir / 'datasets' / 'benchmark' / 'Set5' / 'HR'
    if not (folder / 'baby.png').is_file():
        pytest.skip(f'{folder / "baby.png"} is absent')
    return folder


@pytest.mark.parametrize('key', list(OFFICIAL), ids=lambda k: f'{k[0]}-x{k[1]}')
def test_protocol_lr_and_psnr_on_set5_match_the_official_rule(set5, key, tmp_path):
    name, scale = key
    rule, shave, pinned = OFFICIAL[key]
    hr = cv2.imread(str(set5 / 'baby.png'))[:, :, ::-1].copy()
    proto = protocol.get_protocol(name)
    lr, crop = proto.make_pair(hr, scale)
    official = _official_matlab_lr(hr, scale) if rule == 'matlab' else _official_pil_lr(hr, scale)
    assert lr.shape == official.shape and crop.shape[:2] == (lr.shape[0] * scale, lr.shape[1] * scale)
    diff = np.abs(lr.astype(int) - official)
    if rule == 'pil' or scale == 4:
        assert diff.max() == 0  # bit for bit
    else:  # float32 here vs float64 in BasicSR: a rounding tie may go the other way
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    sr = compare.bicubic_upscale(official, crop.shape[:2])
    expected = _psnr_y(sr, crop, shave)
    assert expected == pytest.approx(pinned, abs=2e-3)
    # gaussiansr-compare under the protocol, on that image alone
    (tmp_path / 'Set5' / 'HR').mkdir(parents=True)
    shutil.copy(set5 / 'baby.png', tmp_path / 'Set5' / 'HR' / 'baby.png')
    argv = ['--model', 'bicubic', '--hr', str(tmp_path / 'Set5' / 'HR'), '--scales', str(scale)]
    argv += ['--protocol', name, '-o', str(tmp_path / 'out'), '--crops', '0', '--quiet']
    results = compare.run(argv)
    assert results[('Bicubic', 'Set5', float(scale))].psnr == [pytest.approx(expected, abs=2e-3)]
    assert (
        f'crop border {"min(scale,8)" if name == "gsasr" else "scale"}' in (tmp_path / 'out' / 'results.md').read_text()
    )


def test_liif_protocol_bicubic_set5_x4_is_the_published_figure(set5):
    """Bicubic on Set5 x4 under LIIF's protocol: 28.42 dB in the published tables (e.g. VDSR, Kim et al.,
    CVPR 2016, Table 3; LIIF's x2-x4 LR are those MATLAB files)."""
    psnrs = []
    for path in sorted(set5.glob('*.png')):
        hr = cv2.imread(str(path))[:, :, ::-1].copy()
        lr, crop = protocol.get_protocol('liif').make_pair(hr, 4)
        psnrs.append(_psnr_y(compare.bicubic_upscale(lr, crop.shape[:2]), crop, 4))
    assert len(psnrs) == 5
    assert np.mean(psnrs) == pytest.approx(28.42, abs=0.02)


# ---------------------------------------------------------------------------- compare: dataset names
def _bench_tree(root, sets):
    rng = np.random.default_rng(7)
    for name, shape in sets.items():
        (root / name / 'HR').mkdir(parents=True)
        cv2.imwrite(str(root / name / 'HR' / 'img.png'), rng.integers(0, 256, shape, dtype=np.uint8))


def test_compare_names_datasets_after_their_set_and_never_merges(tmp_path, capsys):
    """``--hr <root>/Set5/HR --hr <root>/Set14/HR``: one column per set, each with that set's figures."""
    root = tmp_path / 'bench'
    _bench_tree(root, {'Set5': (40, 44, 3), 'Set14': (36, 48, 3), 'lower': (30, 30, 3)})
    base = ['--model', 'bicubic', '--scales', '2', '--crops', '0', '--quiet']
    both = compare.run(
        [*base, '--hr', str(root / 'Set5' / 'HR'), '--hr', str(root / 'Set14' / 'HR'), '-o', str(tmp_path / 'b')]
    )
    assert sorted({k[1] for k in both}) == ['Set14', 'Set5']
    for name in ('Set5', 'Set14'):
        alone = compare.run([*base, '--hr', str(root / name / 'HR'), '-o', str(tmp_path / name)])
        assert (
            both[('Bicubic', name, 2.0)].psnr == alone[('Bicubic', name, 2.0)].psnr
            and len(alone[('Bicubic', name, 2.0)].psnr) == 1
        )
    md = (tmp_path / 'b' / 'results.md').read_text()
    assert 'Set5 x2' in md and 'Set14 x2' in md and 'HR x2' not in md
    # a folder not called HR keeps its own name; trailing slashes do not matter
    assert compare.default_dataset_name(str(root / 'Set5' / 'HR') + '/') == 'Set5'
    assert compare.default_dataset_name(str(root / 'lower')) == 'lower'
    # two inputs of the same name: one line naming both folders, nothing merged
    twice = [
        *base,
        '--hr',
        str(root / 'Set5' / 'HR'),
        '--hr',
        str(root / 'Set5' / 'HR') + '/',
        '-o',
        str(tmp_path / 'c'),
    ]
    message = tool_error(capsys, compare.run, twice)
    assert message == (
        f'error: command line: datasets[0] ({root / "Set5" / "HR"}) and datasets[1] ({root / "Set5" / "HR"}/) '
        'are both named \'Set5\': give them distinct names (config "name")'
    )
    assert not (tmp_path / 'c' / 'results.md').exists()


def test_compare_protocol_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / 'bench'
    _bench_tree(root, {'Set5': (40, 44, 3)})
    base = [
        '--model',
        'bicubic',
        '--hr',
        str(root / 'Set5' / 'HR'),
        '--crops',
        '0',
        '--quiet',
        '-o',
        str(tmp_path / 'o'),
    ]
    message = tool_error(capsys, compare.run, [*base, '--protocol', 'nope'])
    assert message == "error: command line: unknown protocol 'nope': choose one of liif, gsasr, continuoussr"
    cfg = tmp_path / 'c.yml'
    cfg.write_text(f'protocol: matlab\ndatasets:\n  - {{hr: {root / "Set5" / "HR"}}}\nmodels:\n  - {{name: bicubic}}\n')
    message = tool_error(capsys, compare.run, ['--config', str(cfg), '--quiet', '-o', str(tmp_path / 'o')])
    assert message == f"error: config {cfg}: unknown protocol 'matlab': choose one of liif, gsasr, continuoussr"
    # an LR folder under a protocol that makes every LR from the HR is refused, not ignored
    cfg.write_text(
        f'datasets:\n  - {{hr: {root / "Set5" / "HR"}, lr: {root}, scales: [4], protocol: gsasr}}\n'
        'models:\n  - {name: bicubic}\n'
    )
    message = tool_error(capsys, compare.run, ['--config', str(cfg), '--quiet', '-o', str(tmp_path / 'o')])
    assert message.startswith(
        f'error: config {cfg}: datasets[0]: dataset \'Set5\' has an "lr" folder, but protocol gsasr'
    )
    assert message.endswith('reads LR files at no scale and makes the LR from the HR at x4: drop "lr" or those scales')


def test_compare_lr_folder_uses_the_protocol_size_check(tmp_path):
    hr = np.random.default_rng(2).integers(0, 256, (41, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), hr[:, :, ::-1])
    ds = compare.DatasetEntry(name='d', hr=str(tmp_path), scales=[2.0], lr=str(tmp_path / 'lr'), filename_tmpl='{}x2')
    (tmp_path / 'lr').mkdir()
    lr = protocol.make_lr_uint8(hr[:40, :40], (20, 20))
    cv2.imwrite(str(tmp_path / 'lr' / 'ax2.png'), lr[:, :, ::-1])
    got_lr, got_hr = compare.make_pair(ds, str(tmp_path / 'a.png'), 2.0)
    np.testing.assert_array_equal(got_lr, lr)
    np.testing.assert_array_equal(got_hr, hr[:40, :40])
    # an LR that is not floor(HR / s): the datasets refuse it, and so does compare
    cv2.imwrite(str(tmp_path / 'lr' / 'ax2.png'), lr[:19, :19, ::-1])
    with pytest.raises(
        ToolError,
        match=r'ax2\.png: LR 19x19 x2 is too small for HR .*a\.png 41x40 '
        r'\(expects HR 38x38; the LR must be floor\(HR / 2\)\)',
    ):
        compare.make_pair(ds, str(tmp_path / 'a.png'), 2.0)
    cv2.imwrite(str(tmp_path / 'lr' / 'ax2.png'), np.zeros((21, 20, 3), np.uint8))
    with pytest.raises(ToolError, match=r'LR 21x20 x2 is larger than HR'):
        compare.make_pair(ds, str(tmp_path / 'a.png'), 2.0)


def test_make_pair_without_lr_folder_is_the_dataset_protocol(tmp_path):
    hr = np.random.default_rng(3).integers(0, 256, (50, 47, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), hr[:, :, ::-1])
    ds = compare.DatasetEntry(name='d', hr=str(tmp_path), scales=[3.6])
    lr, crop = compare.make_pair(ds, str(tmp_path / 'a.png'), 3.6)
    (hh, ww), size = protocol.hr_crop_and_lr_size(hr.shape[:2], 3.6)
    np.testing.assert_array_equal(crop, hr[:hh, :ww])
    expected = (np.clip(imresize_to(hr[:hh, :ww].astype(np.float32) / 255.0, size), 0, 1) * 255.0).round()
    np.testing.assert_array_equal(lr, expected.astype(np.uint8))
    with pytest.raises(ToolError, match=r'a\.png: image 50x47 is too small for scale 60'):
        compare.make_pair(ds, str(tmp_path / 'a.png'), 60.0)


def test_kernel_images_are_the_arch_gaussian():
    bank = np.array([[0.5, 1.0, 0.3, 0.8], [1.5, 0.4, -0.6, 1.0]], np.float32)
    axis = np.linspace(-2.0, 2.0, 33)
    yy, xx = np.meshgrid(axis, axis, indexing='ij')
    for img, (sy, sx, rho, opacity) in zip(kernel_bank.kernel_images(bank), bank.astype(np.float64)):
        q = ((yy / sy) ** 2 - 2 * rho * (yy / sy) * (xx / sx) + (xx / sx) ** 2) / (1 - rho**2)
        np.testing.assert_allclose(img, opacity * np.exp(-0.5 * q), rtol=1e-12, atol=1e-15)
