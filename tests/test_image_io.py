"""Image reading/writing: BasicSR conventions, one-line errors naming the file, atomic writes."""

import errno
import os

import cv2
import numpy as np
import pytest
import skimage.data
from basicsr.utils.matlab_functions import imresize

from gaussiansr_arch.utils import atomic
from gaussiansr_arch.utils.image_io import (
    ImageReadError,
    decode_image,
    imresize_to,
    read_image,
    write_image_atomic,
)

import train_helpers as th


@pytest.fixture(scope='module')
def rgb():
    return np.ascontiguousarray(skimage.data.astronaut()[100:140, 150:196])  # 40x46x3 uint8 RGB


def _encode(ext, img_bgr_or_gray):
    ok, buf = cv2.imencode(ext, img_bgr_or_gray)
    assert ok
    return buf.tobytes()


def test_png_roundtrip_rgb_order_and_float(rgb, tmp_path):
    path = tmp_path / 'a.png'
    write_image_atomic(path, rgb)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (40, 46, 3)
    np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(read_image(str(path), channel_order='bgr'), rgb[:, :, ::-1])
    f = read_image(path, float32=True)
    assert f.dtype == np.float32 and f.max() <= 1.0
    np.testing.assert_allclose(f * 255.0, rgb, atol=1e-4)
    # bytes work too and match basicsr's imfrombytes convention (BGR float32)
    np.testing.assert_array_equal(read_image(path.read_bytes()), rgb)


def test_gray_alpha_and_16bit_conventions(rgb):
    gray = rgb[:, :, 0]
    out = decode_image(_encode('.png', gray))
    assert out.shape == (40, 46, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)

    bgra = np.concatenate([rgb[:, :, ::-1], np.full((40, 46, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image(_encode('.png', bgra)), rgb)

    # 16-bit: v * 257 must map back to v exactly, 65535 -> 255
    img16 = rgb[:, :, ::-1].astype(np.uint16) * 257
    np.testing.assert_array_equal(decode_image(_encode('.png', img16)), rgb)
    assert decode_image(_encode('.png', np.full((2, 2), 65535, np.uint16))).max() == 255


@pytest.mark.parametrize(
    'case, message',
    [
        ('empty', 'empty'),
        ('truncated_png', 'cannot read image'),
        ('truncated_jpg', 'cannot read image'),
        ('text', 'not a decodable image'),
        ('missing', 'no such file'),
    ],
)
def test_bad_files_raise_one_line_error_naming_file(rgb, tmp_path, case, message):
    path = tmp_path / f'bad_{case}.png'
    png, jpg = _encode('.png', rgb[:, :, ::-1]), _encode('.jpg', rgb[:, :, ::-1])
    content = {
        'empty': b'',
        'truncated_png': png[: len(png) // 2],
        'truncated_jpg': jpg[: len(jpg) - 40],
        'text': b'hello, I am not an image',
        'missing': None,
    }[case]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    text = str(info.value)
    assert str(path) in text and message in text and '\n' not in text
    assert isinstance(info.value, ValueError)


def test_jpeg_truncation_detected_without_decoder_help(rgb):
    jpg = _encode('.jpg', rgb[:, :, ::-1])
    assert decode_image(jpg).shape == (40, 46, 3)
    assert decode_image(jpg + b'trailing bytes after EOI are fine').shape == (40, 46, 3)
    with pytest.raises(ImageReadError, match='truncated JPEG'):
        decode_image(jpg[:-2], 'x.jpg')


def test_write_image_atomic_leaves_no_temp_and_replaces(rgb, tmp_path):
    path = tmp_path / 'sub' / 'out.png'
    write_image_atomic(path, rgb)
    write_image_atomic(path, rgb[::-1].copy())  # replace an existing file
    np.testing.assert_array_equal(read_image(path), rgb[::-1])
    assert sorted(os.listdir(path.parent)) == ['out.png']
    with pytest.raises(ValueError, match='uint8'):
        write_image_atomic(path, rgb.astype(np.float32))
    with pytest.raises(ValueError, match='cannot encode'):
        write_image_atomic(tmp_path / 'x.unknownext', rgb)
    assert not any(n.startswith('.') for n in os.listdir(tmp_path))


def test_write_image_atomic_full_disk_leaves_nothing(rgb, tmp_path, monkeypatch):
    """ENOSPC halfway through the write: no temporary file, no final file, no folder made for it."""
    old = tmp_path / 'old.png'
    write_image_atomic(old, rgb)
    before = old.read_bytes()
    th.fill_disk(monkeypatch, atomic)
    for path in (tmp_path / 'new' / 'deeper' / 'out.png', old):
        with pytest.raises(OSError) as err:
            write_image_atomic(path, rgb[::-1].copy())
        assert err.value.errno == errno.ENOSPC
    assert old.read_bytes() == before  # an existing file keeps its content
    assert sorted(os.listdir(tmp_path)) == ['old.png'] and not th.hidden_or_tmp(tmp_path)


def test_write_image_atomic_folder_under_a_file(rgb, tmp_path):
    (tmp_path / 'file.png').write_bytes(b'x')
    for path in (tmp_path / 'file.png' / 'out.png', tmp_path / 'file.png' / 'sub' / 'out.png'):
        with pytest.raises(OSError):
            write_image_atomic(path, rgb)
    assert sorted(os.listdir(tmp_path)) == ['file.png'] and (tmp_path / 'file.png').read_bytes() == b'x'


@pytest.mark.parametrize('hw, out', [((192, 192), (48, 48)), ((96, 60), (32, 20)), ((50, 50), (75, 75))])
def test_imresize_to_matches_basicsr_when_ratios_agree(hw, out):
    img = np.random.default_rng(0).random(hw + (3,)).astype(np.float32)
    ref = imresize(img, out[0] / hw[0])
    assert ref.shape[:2] == out
    np.testing.assert_allclose(imresize_to(img, out), ref, atol=1e-5)


def test_imresize_to_exact_size_where_basicsr_cannot():
    # 97x148 at scale 3.6 -> 27x41: one basicsr scale gives 27x42
    img = np.random.default_rng(1).random((97, 148, 3)).astype(np.float32)
    assert imresize(img, 27 / 97).shape[:2] == (27, 42)
    out = imresize_to(img, (27, 41))
    assert out.shape == (27, 41, 3) and out.dtype == np.float32
    # same-ratio axis: rows of a 97x97 crop to 27x27 equal basicsr's single-scale result
    np.testing.assert_allclose(imresize_to(img[:, :97], (27, 27)), imresize(img[:, :97], 27 / 97), atol=1e-5)
    const = np.full((31, 17), 0.25, np.float32)
    np.testing.assert_allclose(imresize_to(const, (9, 5)), 0.25, atol=1e-6)
