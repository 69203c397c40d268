"""ArbitraryScaleImageDataset / ArbitraryScalePairedDataset: geometry, backends, errors, DDP scale sync."""

import math
import os.path as osp

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils.lmdb_util import LmdbMaker
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from gaussiansr_arch.archs.coordinates import make_coord
from gaussiansr_arch.data.arbitrary_scale_dataset import (
    ArbitraryScaleImageDataset,
    ArbitraryScalePairedDataset,
    hr_crop_and_lr_size,
    make_lr,
)
from gaussiansr_arch.utils.image_io import ImageReadError, imresize_pil, read_image

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'cat')


def _photo(name: str, size=(48, 64)) -> np.ndarray:
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    h, w = size
    return np.ascontiguousarray(img[60 : 60 + 4 * h : 4, 80 : 80 + 4 * w : 4, :3])


def _write_png(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def _make_lmdb(path, images: dict):
    maker = LmdbMaker(str(path))
    for key, rgb in images.items():
        _, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[:, :, ::-1]))
        maker.put(buf.tobytes(), key, rgb.shape)
    maker.close()


@pytest.fixture(scope='module')
def hr_images():
    return {f'{i:04d}': _photo(n) for i, n in enumerate(PHOTOS, 1)}


@pytest.fixture(scope='module')
def roots(tmp_path_factory, hr_images):
    base = tmp_path_factory.mktemp('data')
    disk = base / 'HR'
    disk.mkdir()
    for key, rgb in hr_images.items():
        _write_png(disk / f'{key}.png', rgb)
    _make_lmdb(base / 'HR.lmdb', hr_images)
    return {'disk': str(disk), 'lmdb': str(base / 'HR.lmdb'), 'base': base}


def _train_opt(root, backend='disk', **kw):
    opt = {
        'dataroot_gt': root,
        'io_backend': {'type': backend},
        'lr_size': 8,
        'scale_min': 1,
        'scale_max': 4,
        'sample_q': 64,
        'use_hflip': True,
        'use_rot': True,
    }
    opt.update(kw)
    return opt


def _find_window(image, crop):
    """(top, left, transform) such that transform(image window) == crop, or None."""
    c = crop.shape[0]
    windows = sliding_window_view(image, (c, c, 3))[:, :, 0]  # [nh, nw, c, c, 3]
    for hflip in (False, True):
        for vflip in (False, True):
            for transpose in (False, True):
                cand = crop.transpose(1, 0, 2) if transpose else crop  # undo in reverse order
                cand = cand[::-1] if vflip else cand
                cand = cand[:, ::-1] if hflip else cand
                hits = np.argwhere(np.all(windows == cand, axis=(2, 3, 4)))
                if len(hits):
                    return int(hits[0][0]), int(hits[0][1]), (hflip, vflip, transpose)
    return None


def test_train_sample_shapes_and_dtypes(roots):
    ds = ArbitraryScaleImageDataset(_train_opt(roots['disk']))
    assert len(ds) == len(PHOTOS)
    for i in range(len(ds)):
        s = ds[i]
        assert s['lq'].shape == (3, 8, 8) and s['gt'].shape == (64, 3)
        assert s['coord'].shape == (64, 2) and s['cell'].shape == (64, 2)
        for k in ('lq', 'gt', 'coord', 'cell', 'scale'):
            assert s[k].dtype == torch.float32, k
        assert 1.0 <= float(s['scale']) <= 4.0 and s['scale'].dim() == 0
        crop = round(8 * float(s['scale']))
        torch.testing.assert_close(s['cell'], torch.tensor([[2.0 / crop, 2.0 / crop]]).expand(64, 2))
        assert float(s['lq'].min()) >= 0 and float(s['lq'].max()) <= 1
        assert s['gt_path'].endswith(f'{i + 1:04d}.png')


@pytest.mark.parametrize('augment', [False, True])
def test_train_geometry_lr_and_queries_are_consistent(roots, hr_images, augment):
    """Full-crop sample: gt is a (flipped/transposed) HR window, lq its exact MATLAB-bicubic LR; then
    the same RNG state with sample_q picks gt rows that sit at their coord in that crop."""
    scale, q = 2.5, 50
    crop = 20
    common = {'scale_min': scale, 'scale_max': scale, 'use_hflip': augment, 'use_rot': augment}
    full = ArbitraryScaleImageDataset(_train_opt(roots['disk'], sample_q=None, **common))
    part = ArbitraryScaleImageDataset(_train_opt(roots['disk'], sample_q=q, **common))
    seen = set()
    for seed in range(8 if augment else 2):
        torch.manual_seed(seed)
        f = full[seed % 3]
        torch.manual_seed(seed)
        p = part[seed % 3]
        hr = f['gt'].reshape(crop, crop, 3).numpy()
        torch.testing.assert_close(f['coord'], make_coord((crop, crop)))
        # the crop (up to its augmentation) is a window of the source image
        source = hr_images[f'{seed % 3 + 1:04d}'].astype(np.float32) / 255.0
        found = _find_window(source, hr)
        assert found is not None
        seen.add(found[2])
        # LR is the MATLAB bicubic of the (augmented) crop; flips/transpose commute with it up to rounding
        lr = f['lq'].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(lr, make_lr(hr, (8, 8)), atol=1 / 255 + 1e-6)
        if found[2] == (False, False, False):
            np.testing.assert_array_equal(lr, make_lr(hr, (8, 8)))
        torch.testing.assert_close(p['lq'], f['lq'])
        rows = torch.round(((p['coord'][:, 0] + 1) * crop - 1) / 2).long()
        cols = torch.round(((p['coord'][:, 1] + 1) * crop - 1) / 2).long()
        assert len(set((rows * crop + cols).tolist())) == q  # without replacement
        torch.testing.assert_close(p['gt'], torch.from_numpy(hr)[rows, cols])
    if augment:
        assert len(seen) > 1  # augmentation really happened
    else:
        assert seen == {(False, False, False)}


def test_lmdb_and_disk_give_identical_samples(roots):
    disk = ArbitraryScaleImageDataset(_train_opt(roots['disk']))
    lmdb = ArbitraryScaleImageDataset(_train_opt(roots['lmdb'], 'lmdb'))
    for i in range(len(disk)):
        torch.manual_seed(i)
        a = disk[i]
        torch.manual_seed(i)
        b = lmdb[i]
        for k in ('lq', 'gt', 'coord', 'cell', 'scale'):
            torch.testing.assert_close(a[k], b[k])
        assert osp.basename(a['gt_path']) == osp.basename(b['gt_path']) + '.png'


def test_meta_info_file_selects_and_orders(roots, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('0003.png (48,64,3) 1\n0001.png (48,64,3) 1\n')
    for root, backend in ((roots['disk'], 'disk'), (roots['lmdb'], 'lmdb')):
        ds = ArbitraryScaleImageDataset(_train_opt(root, backend, meta_info_file=str(meta)))
        assert len(ds) == 2 and '0003' in ds[0]['gt_path'] and '0001' in ds[1]['gt_path']


def test_meta_info_listing_absent_keys_fails_at_init(roots, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('0001.png (48,64,3) 1\n0999.png (48,64,3) 1\n')
    with pytest.raises(KeyError, match=r'0999.*absent from LMDB .*HR\.lmdb'):
        ArbitraryScaleImageDataset(_train_opt(roots['lmdb'], 'lmdb', meta_info_file=str(meta)))
    with pytest.raises(FileNotFoundError, match='0999.png'):
        ArbitraryScaleImageDataset(_train_opt(roots['disk'], meta_info_file=str(meta)))


@pytest.mark.parametrize(
    'change, exc, pattern',
    [
        ({'bogus_key': 1}, ValueError, r"unknown option key\(s\) \['bogus_key'\]; allowed keys are .*'lr_size'"),
        ({'scale_min': 3, 'scale_max': 2}, ValueError, r'scale_min \(3.0\) > scale_max \(2.0\)'),
        ({'scale_min': 0}, ValueError, 'scale must be a finite number > 0'),
        ({'sample_q': None}, ValueError, 'sample_q: null .* needs a fixed scale'),
        ({'sample_q': 65}, ValueError, r'sample_q must be in \[1, 64\]'),
        ({'io_backend': {'type': 'lmdb'}}, ValueError, r'is not an LMDB .*io_backend: \{type: disk\}'),
        ({'io_backend': {'type': 'ftp'}}, ValueError, "io_backend type must be 'disk' or 'lmdb'"),
        ({'dataroot_gt': '/nonexistent/x'}, FileNotFoundError, 'dataroot_gt /nonexistent/x does not exist'),
        ({'batch_scale': True}, ValueError, 'batch_scale needs batch_size_per_gpu'),
        ({'sample_seed': 1}, ValueError, 'sample_seed needs batch_size_per_gpu'),
        ({'sample_seed': 'x', 'batch_size_per_gpu': 2}, ValueError, 'sample_seed'),
    ],
)
def test_train_option_errors(roots, change, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ArbitraryScaleImageDataset(_train_opt(roots['disk'], **change))


def test_disk_backend_on_lmdb_and_corrupt_and_small_images(roots, tmp_path):
    with pytest.raises(ValueError, match='is an LMDB; use io_backend'):
        ArbitraryScaleImageDataset(_train_opt(roots['lmdb']))
    folder = tmp_path / 'bad'
    folder.mkdir()
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    _write_png(folder / 'small.png', _photo('astronaut', (20, 20)))
    ds = ArbitraryScaleImageDataset(_train_opt(str(folder), scale_min=3, scale_max=3, sample_q=16))
    with pytest.raises(ImageReadError, match=r'broken\.png'):
        ds[0]
    with pytest.raises(ValueError, match=r'small\.png \(20x20\) is smaller than the 24x24 crop'):
        ds[1]
    with pytest.raises(ValueError, match='contains no images'):
        ArbitraryScaleImageDataset(_train_opt(str(tmp_path)))


def _batch_scales(root, rank, num_workers, batch_size=2):
    opt = _train_opt(root, batch_scale=True, scale_seed=7, batch_size_per_gpu=batch_size)
    ds = ArbitraryScaleImageDataset(opt)
    sampler = EnlargedSampler(ds, num_replicas=2, rank=rank, ratio=4)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    torch.manual_seed(100 + rank)  # ranks have different RNG states, as in BasicSR (seed + rank)
    return [batch['scale'].tolist() for batch in loader]


def test_batch_scale_is_identical_across_ranks_and_constant_in_batch(roots):
    runs = {(rank, nw): _batch_scales(roots['disk'], rank, nw) for rank in (0, 1) for nw in (0, 2)}
    ref = runs[(0, 0)]
    assert len(ref) == 6  # 6 images x ratio 4 / 2 ranks / batch 2
    for scales in runs.values():
        assert [b[0] for b in scales] == [b[0] for b in ref]  # same sequence on every rank and worker count
        assert all(len(set(b)) == 1 for b in scales)  # one scale per batch
    assert len({b[0] for b in ref}) > 1  # but the scale varies from batch to batch


def _seeded_batches(root, num_workers, rng_seed, sample_seed, batch_size=2):
    opt = _train_opt(root, sample_seed=sample_seed, batch_size_per_gpu=batch_size, use_hflip=True, use_rot=True)
    ds = ArbitraryScaleImageDataset(opt)
    sampler = EnlargedSampler(ds, num_replicas=1, rank=0, ratio=2)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    torch.manual_seed(rng_seed)  # as weight initialisation of different models leaves the global RNG
    batches = []
    for batch in loader:
        batches.append({k: batch[k].clone() for k in ('lq', 'gt', 'coord', 'cell', 'scale')})
        torch.rand(1000)  # training consumes the global RNG between batches (Gumbel noise, dropout)
    return batches


def _same_batches(a, b):
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_sample_seed_gives_identical_batches_whatever_the_global_rng(roots):
    ref = _seeded_batches(roots['disk'], 0, rng_seed=1, sample_seed=5)
    assert len(ref) == 6  # 6 images x ratio 2 / batch 2
    assert _same_batches(ref, _seeded_batches(roots['disk'], 0, rng_seed=2, sample_seed=5))
    assert _same_batches(ref, _seeded_batches(roots['disk'], 2, rng_seed=3, sample_seed=5))  # workers too
    assert not _same_batches(ref, _seeded_batches(roots['disk'], 0, rng_seed=1, sample_seed=6))
    # the draws differ from sample to sample (not one generator state reused)
    assert len({round(float(s), 6) for b in ref for s in b['scale']}) > 1
    # without sample_seed the batches follow the global RNG, so they differ
    unseeded = [_seeded_batches(roots['disk'], 0, rng_seed=r, sample_seed=None) for r in (1, 2)]
    assert not _same_batches(*unseeded)


def test_basicsr_build_dataset_and_dataloader_with_enlarge_ratio(roots):
    opt = _train_opt(roots['disk'])
    opt.update(
        name='div2k',
        type='ArbitraryScaleImageDataset',
        phase='train',
        batch_size_per_gpu=4,
        num_worker_per_gpu=0,
        dataset_enlarge_ratio=5,
        use_shuffle=True,
        prefetch_mode=None,
        pin_memory=False,
        scale=4,
    )
    ds = build_dataset(opt)
    sampler = EnlargedSampler(ds, 1, 0, opt['dataset_enlarge_ratio'])
    loader = build_dataloader(ds, opt, num_gpu=0, dist=False, sampler=sampler, seed=0)
    assert len(loader) == len(PHOTOS) * 5 // 4
    batch = next(iter(loader))
    assert batch['lq'].shape == (4, 3, 8, 8) and batch['gt'].shape == (4, 64, 3)
    assert batch['coord'].shape == (4, 64, 2) and batch['scale'].shape == (4,)


# ------------------------------------------------------------------ paired (val / test)


@pytest.mark.parametrize('scale', [2, 2.4, 3.6, 12])
def test_paired_from_hr_sizes_and_lr(roots, hr_images, scale):
    ds = ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': scale, 'name': 'v', 'phase': 'val'})
    s = ds[0]
    hr = hr_images['0001']
    h_lr, w_lr = math.floor(48 / scale + 1e-9), math.floor(64 / scale + 1e-9)
    assert s['lq'].shape == (3, h_lr, w_lr)
    assert s['gt'].shape == (3, round(h_lr * scale), round(w_lr * scale))
    gt = s['gt'].numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(gt, hr[: gt.shape[0], : gt.shape[1]].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(s['lq'].numpy().transpose(1, 2, 0), make_lr(gt, (h_lr, w_lr)))
    assert s['scale'] == float(scale) and s['gt_path'].endswith('0001.png')


def test_hr_crop_and_lr_size_protocol():
    assert hr_crop_and_lr_size((480, 500), 2.4) == ((480, 499), (200, 208))
    assert hr_crop_and_lr_size((100, 150), 3.6) == ((97, 148), (27, 41))
    with pytest.raises(ValueError, match='too small'):
        hr_crop_and_lr_size((5, 5), 6)


def _lr_folder(base, hr_images, scale, tmpl, pad=0):
    folder = base / f'LR_x{scale}'
    folder.mkdir()
    for key, rgb in hr_images.items():
        (_, _), lr_size = hr_crop_and_lr_size(rgb.shape[:2], scale)
        lr = make_lr(rgb[: lr_size[0] * scale, : lr_size[1] * scale].astype(np.float32) / 255.0, lr_size)
        _write_png(folder / f'{tmpl.format(key)}.png', np.round(lr * 255).astype(np.uint8))
    return folder


def test_paired_with_lr_files_disk_and_lmdb_and_crop(roots, hr_images, tmp_path):
    # HR 2 / 1 pixels larger than 3 * LR (47x64 -> 15x21): cropped, like Set14-style images
    small = {k: v[:47, :64] for k, v in hr_images.items()}
    lr_dir = _lr_folder(tmp_path, small, 3, '{}x3')
    hr_dir = tmp_path / 'HR'
    hr_dir.mkdir()
    for key, rgb in small.items():
        _write_png(hr_dir / f'{key}.png', rgb)
    opt = {
        'dataroot_gt': str(hr_dir),
        'dataroot_lq': str(lr_dir),
        'filename_tmpl': '{}x3',
        'scale': 3,
        'io_backend': {'type': 'disk'},
    }
    s = ArbitraryScalePairedDataset(opt)[1]
    assert s['lq'].shape == (3, 15, 21) and s['gt'].shape == (3, 45, 63)
    assert s['lq_path'].endswith('0002x3.png') and s['gt_path'].endswith('0002.png')
    np.testing.assert_array_equal(s['lq'].numpy().transpose(1, 2, 0), read_image(s['lq_path'], float32=True))

    _make_lmdb(tmp_path / 'HR.lmdb', small)
    _make_lmdb(tmp_path / 'LR.lmdb', {f'{k}x3': read_image(lr_dir / f'{k}x3.png') for k in hr_images})
    lm_opt = dict(
        opt, dataroot_gt=str(tmp_path / 'HR.lmdb'), dataroot_lq=str(tmp_path / 'LR.lmdb'), io_backend={'type': 'lmdb'}
    )
    lm = ArbitraryScalePairedDataset(lm_opt)[1]
    torch.testing.assert_close(lm['lq'], s['lq'])
    torch.testing.assert_close(lm['gt'], s['gt'])
    assert osp.basename(lm['lq_path']) == '0002x3'


def test_paired_errors(roots, hr_images, tmp_path):
    lr_dir = _lr_folder(tmp_path, hr_images, 2, '{}x2')
    base = {'dataroot_gt': roots['disk'], 'dataroot_lq': str(lr_dir), 'scale': 2}
    lmdb = {'type': 'lmdb'}
    with pytest.raises(FileNotFoundError, match=r"no LR image '0001x3' in .*LR_x2 for HR .*0001\.png"):
        ArbitraryScalePairedDataset(dict(base, filename_tmpl='{}x3'))
    with pytest.raises(
        ValueError,
        match=r'size mismatch at scale 3: HR .*0001\.png is 48x64, '
        r'LR .*0001x2\.png is 24x32 \(expects HR 72x96\)',
    ):
        ArbitraryScalePairedDataset(dict(base, filename_tmpl='{}x2', scale=3))[0]
    with pytest.raises(ValueError, match=r"unknown option key\(s\) \['dataroot_lr'\].*'dataroot_lq'"):
        ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': 2, 'dataroot_lr': 'x'})
    with pytest.raises(ValueError, match='option scale is required'):
        ArbitraryScalePairedDataset({'dataroot_gt': roots['disk']})
    with pytest.raises(ValueError, match='scale must be a number'):
        ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': 'x4'})
    with pytest.raises(ValueError, match=r'is not an LMDB \(no data.mdb\)'):
        ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': 2, 'io_backend': lmdb})
    # an LMDB whose data lost a key after the meta_info was written (key check at read time)
    ds = ArbitraryScalePairedDataset({'dataroot_gt': roots['lmdb'], 'scale': 2, 'io_backend': lmdb})
    ds.gt_index.locations[0] = 'gone'
    with pytest.raises(KeyError, match=r"key 'gone' is missing from LMDB .*HR\.lmdb"):
        ds[0]


def test_lmdb_shared_by_several_datasets_and_forked_workers(roots):
    """py-lmdb refuses a second open of a path in one process (and in forked children of a process
    holding it): x2/x3 validation sets sharing one HR LMDB, then training workers, must still work."""
    lmdb = {'type': 'lmdb'}
    v2 = ArbitraryScalePairedDataset({'dataroot_gt': roots['lmdb'], 'scale': 2, 'io_backend': lmdb})
    v3 = ArbitraryScalePairedDataset({'dataroot_gt': roots['lmdb'], 'scale': 3, 'io_backend': lmdb})
    assert v2[0]['gt'].shape == (3, 48, 64) and v3[0]['gt'].shape == (3, 48, 63)
    train = ArbitraryScaleImageDataset(_train_opt(roots['lmdb'], 'lmdb'))
    train[0]  # opened in the main process before the workers fork
    batches = list(DataLoader(train, batch_size=3, num_workers=2))
    assert len(batches) == 2 and batches[0]['lq'].shape == (3, 3, 8, 8)


# ------------------------------------------------------------------ lr_degradation: pil (LIIF's resize_fn)


def _liif_resize_fn(img, size):
    """LIIF's ``resize_fn`` (datasets/wrappers.py) verbatim: a float CHW tensor in, a float CHW tensor out."""
    return transforms.ToTensor()(transforms.Resize(size, Image.BICUBIC)(transforms.ToPILImage()(img)))


def _liif_lr(hr_hwc: np.ndarray, size) -> np.ndarray:
    """``_liif_resize_fn`` of an HxWx3 float32 image, back to HxWx3 numpy."""
    out = _liif_resize_fn(torch.from_numpy(np.ascontiguousarray(hr_hwc)).permute(2, 0, 1), size)
    assert out.dtype == torch.float32
    return out.permute(1, 2, 0).numpy()


@pytest.mark.parametrize('size', [(20, 28), (13, 29), (7, 9), (50, 70), (61, 83)])
def test_imresize_pil_equals_liif_resize_fn_bit_exactly(size):
    """Random (not 8-bit) values: the float -> uint8 truncation of ToPILImage must match too. Sizes:
    x2.5, different non-integer ratios per axis (50/13, 70/29), heavy downscale, same size, upscale."""
    rng = np.random.default_rng(sum(size))
    img = rng.random((50, 70, 3), dtype=np.float32)
    img[0, :5] = [0.0, 1.0, 0.5]  # the ends of the range and an exact half
    ours = imresize_pil(img, size)
    assert ours.dtype == np.float32 and ours.shape == (*size, 3)
    np.testing.assert_array_equal(ours, _liif_lr(img, list(size)))
    # an 8-bit-valued image (what the datasets feed in) and LIIF's int size for a square image
    img8 = np.round(img * 255).astype(np.float32) / 255
    np.testing.assert_array_equal(imresize_pil(img8, size), _liif_lr(img8, list(size)))
    np.testing.assert_array_equal(imresize_pil(img8[:, :50], (size[0], size[0])), _liif_lr(img8[:, :50], size[0]))
    np.testing.assert_array_equal(make_lr(img8, size, 'pil'), imresize_pil(img8, size))


@pytest.mark.parametrize('augment', [False, True])
@pytest.mark.parametrize('scale', [2.5, 3.3])
def test_train_pil_degradation_lr_equals_liif_resize_fn(roots, hr_images, scale, augment):
    """lq = LIIF's resize_fn(HR crop, lr_size) (made before augmentation, as LIIF does), bit for bit."""
    crop = round(8 * scale)  # 20, 26 (x3.25)
    ds = ArbitraryScaleImageDataset(
        _train_opt(
            roots['disk'],
            sample_q=None,
            scale_min=scale,
            scale_max=scale,
            use_hflip=augment,
            use_rot=augment,
            lr_degradation='pil',
        )
    )
    assert ds.lr_degradation == 'pil'
    for seed in range(6 if augment else 2):
        torch.manual_seed(seed)
        s = ds[seed % 3]
        hr = s['gt'].reshape(crop, crop, 3).numpy()
        lr = s['lq'].numpy().transpose(1, 2, 0)
        source = hr_images[f'{seed % 3 + 1:04d}'].astype(np.float32) / 255.0
        top, left, (hflip, vflip, transpose) = _find_window(source, hr)
        ref = _liif_lr(source[top : top + crop, left : left + crop], 8)  # LIIF: resize_fn(crop_hr, w_lr)
        ref = ref[:, ::-1] if hflip else ref
        ref = ref[::-1] if vflip else ref
        ref = ref.transpose(1, 0, 2) if transpose else ref
        np.testing.assert_array_equal(lr, ref)


@pytest.mark.parametrize('scale', [2.4, 3.6])
def test_paired_pil_degradation_from_hr_and_ignored_with_lr_files(roots, hr_images, tmp_path, scale):
    s = ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': scale, 'lr_degradation': 'pil'})[0]
    gt = s['gt'].numpy().transpose(1, 2, 0)
    (hr_h, hr_w), lr_size = hr_crop_and_lr_size((48, 64), scale)
    assert gt.shape == (hr_h, hr_w, 3)
    np.testing.assert_array_equal(s['lq'].numpy().transpose(1, 2, 0), _liif_lr(gt, list(lr_size)))
    # with dataroot_lq the files are used whatever lr_degradation says
    lr_dir = _lr_folder(tmp_path, hr_images, 2, '{}x2')
    opt = {'dataroot_gt': roots['disk'], 'dataroot_lq': str(lr_dir), 'filename_tmpl': '{}x2', 'scale': 2}
    with_pil = ArbitraryScalePairedDataset(dict(opt, lr_degradation='pil'))[0]
    torch.testing.assert_close(with_pil['lq'], ArbitraryScalePairedDataset(opt)[0]['lq'], rtol=0, atol=0)
    np.testing.assert_array_equal(
        with_pil['lq'].numpy().transpose(1, 2, 0), read_image(with_pil['lq_path'], float32=True)
    )


@pytest.mark.parametrize('value', ['PIL', 'bicubic', '', 1, None, True])
@pytest.mark.parametrize('dataset', ['train', 'paired'])
def test_lr_degradation_bad_value_is_one_line_error(roots, dataset, value):
    if dataset == 'train':
        opt, cls = _train_opt(roots['disk'], lr_degradation=value), ArbitraryScaleImageDataset
    else:
        opt, cls = {'dataroot_gt': roots['disk'], 'scale': 2, 'lr_degradation': value}, ArbitraryScalePairedDataset
    with pytest.raises(ValueError) as info:
        cls(opt)
    msg = str(info.value)
    assert '\n' not in msg
    assert msg.startswith(f'{cls.__name__}: option lr_degradation must be one of matlab, pil, got {value!r}')


def test_make_lr_bad_degradation():
    with pytest.raises(ValueError, match="make_lr: degradation must be one of matlab, pil, got 'PIL'"):
        make_lr(np.zeros((8, 8, 3), np.float32), (4, 4), 'PIL')


def test_pil_and_matlab_lr_differ_and_default_is_matlab(roots):
    opts = {
        k: _train_opt(
            roots['disk'],
            sample_q=None,
            scale_min=3,
            scale_max=3,
            use_hflip=False,
            use_rot=False,
            **({} if k is None else {'lr_degradation': k}),
        )
        for k in (None, 'matlab', 'pil')
    }
    samples = {}
    for key, opt in opts.items():
        torch.manual_seed(0)
        samples[key] = ArbitraryScaleImageDataset(opt)[0]
    default, matlab, pil = samples[None], samples['matlab'], samples['pil']
    torch.testing.assert_close(default['lq'], matlab['lq'], rtol=0, atol=0)  # default is matlab
    torch.testing.assert_close(pil['gt'], matlab['gt'], rtol=0, atol=0)  # same crop
    hr = matlab['gt'].reshape(24, 24, 3).numpy()
    np.testing.assert_array_equal(matlab['lq'].numpy().transpose(1, 2, 0), make_lr(hr, (8, 8)))
    diff = (pil['lq'] - matlab['lq']).abs()
    assert float(diff.max()) >= 2 / 255 and float((diff > 0).float().mean()) > 0.1  # not just rounding noise
    # close, though: both are bicubic downscales of the same crop
    assert float(diff.mean()) < 0.05
    # the paired (from-HR) dataset too
    paired = {
        k: ArbitraryScalePairedDataset({'dataroot_gt': roots['disk'], 'scale': 3.6, 'lr_degradation': k})[1]
        for k in ('matlab', 'pil')
    }
    torch.testing.assert_close(paired['pil']['gt'], paired['matlab']['gt'], rtol=0, atol=0)
    assert not torch.equal(paired['pil']['lq'], paired['matlab']['lq'])
