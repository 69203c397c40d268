"""The evaluation protocol module (gaussiansr_arch/data/protocol.py): one definition, used everywhere."""

import math

import cv2
import numpy as np
import pytest

from gaussiansr_arch.data import arbitrary_scale_dataset, protocol
from gaussiansr_arch.tools import compare, kernel_bank
from gaussiansr_arch.tools.common import ToolError
from gaussiansr_arch.utils.image_io import imresize_to


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


def test_metric_options_per_protocol():
    assert protocol.metric_options(2.4) == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 3, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 3, 'test_y_channel': True},
    }
    assert protocol.metric_options(4, 'div2k') == {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 10, 'test_y_channel': False}
    }
    assert protocol.crop_border(3.0000000000001) == 3
    with pytest.raises(ValueError, match='protocol must be one of benchmark, div2k'):
        protocol.metric_options(2, 'Set5')


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
