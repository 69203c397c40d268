"""Arbitrary-scale SR datasets (LIIF-style sampling) for BasicSR.

* :class:`ArbitraryScaleImageDataset` (training): HR images only; every sample draws a scale,
  crops a HR patch of ``round(lr_size * s)`` pixels, makes an ``lr_size`` x ``lr_size`` LR patch by
  MATLAB bicubic (or LIIF's PIL bicubic, ``lr_degradation: pil``), and returns ``sample_q`` random
  HR pixels with their coordinates and cells.
* :class:`ArbitraryScalePairedDataset` (validation / test): whole images at one (possibly
  non-integer) scale, LR read from ``dataroot_lq`` or made from the HR.

Both read through basicsr's ``FileClient`` (``io_backend`` ``disk`` or ``lmdb``) and decode with
:mod:`gaussiansr_arch.utils.image_io`, so corrupt files fail with a one-line error naming them.

LR images made here are rounded to 8 bits, exactly like the bicubic LR PNGs shipped with DIV2K
and the benchmarks (and written by ``gaussiansr-prepare-benchmark``): a model then sees the same
kind of input in training, in validation from HR, and in testing from files.

``lr_degradation`` chooses how an LR is made from its HR (see :func:`make_lr`): ``matlab`` (default,
MATLAB's antialiased bicubic ``imresize``, like the DIV2K / benchmark LR files) or ``pil`` (LIIF's
``resize_fn``: Pillow's bicubic of the 8-bit-truncated image, which LIIF's and the GaussianSR
authors' training, and LIIF's x6-x30 DIV2K evaluation, use).

The sizes, the LR generation and the 8-bit rounding are :mod:`gaussiansr_arch.data.protocol`'s
(shared with the tools); :func:`make_lr`, :func:`hr_crop_and_lr_size` and ``LR_DEGRADATIONS`` are
re-exported here.
"""

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from gaussiansr_arch.archs.coordinates import check_scale, make_cell, make_coord
from gaussiansr_arch.data.dataset_options import check_options, option_value
from gaussiansr_arch.data.image_sources import ImageIndex, LmdbKeyError, backend_of, make_file_client
from gaussiansr_arch.data.protocol import (  # make_lr, hr_crop_and_lr_size, LR_DEGRADATIONS: re-exported
    LR_DEGRADATIONS,
    get_protocol,
    hr_crop_and_lr_size,
    hr_crop_for_lr,
    lr_size_matches,
    make_lr,
)

__all__ = [
    'ArbitraryScaleImageDataset',
    'ArbitraryScalePairedDataset',
    'LmdbKeyError',
    'hr_crop_and_lr_size',
    'make_lr',
    'LR_DEGRADATIONS',
]


@DATASET_REGISTRY.register()
class ArbitraryScaleImageDataset(data.Dataset):
    """Training dataset: random-scale HR crops, exact-size LR patches and sampled HR queries.

    Per sample: ``s ~ U(scale_min, scale_max)``; HR crop of ``c = round(lr_size * s)`` pixels at a
    random position; LR = bicubic of the crop to exactly ``lr_size`` (8-bit; MATLAB or PIL, see
    ``lr_degradation``);
    the same random hflip / vflip / transpose on LR and HR; ``sample_q`` HR pixels drawn without
    replacement. All samples have the same shapes, so BasicSR's default collate works.

    Randomness uses torch's global RNG: the DataLoader reseeds it per worker *and per epoch*,
    whereas basicsr's ``worker_init_fn`` reseeds numpy identically every epoch. With ``sample_seed``
    it comes from a generator of the sample's position in the stream instead (below).

    Args:
        opt (dict): Options (YAML ``datasets.train``):
            dataroot_gt (str): HR folder or ``*.lmdb``.
            io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
            meta_info_file (str, optional): Image list (``name (h,w,c) level`` lines).
            lr_size (int): LR patch size. Default 48.
            scale_min, scale_max (float): Scale range. Default 1, 4.
            sample_q (int | None): HR queries per sample. Default 2304. ``None``: every pixel of the
                crop, only allowed when ``scale_min == scale_max``.
            use_hflip (bool): Random horizontal flip. Default False.
            use_rot (bool): Random vertical flip and transpose. Default False.
            lr_degradation (str): How the LR patch is made from the HR crop (before augmentation):
                ``matlab`` (default; MATLAB antialiased bicubic ``imresize``, rounded to 8 bits) or
                ``pil`` (LIIF's / the GaussianSR authors' ``resize_fn``: Pillow bicubic of the
                8-bit-truncated crop). See :func:`make_lr`.
            batch_scale (bool): One scale per batch (see below). Default False.
            scale_seed (int): Seed of the per-batch scale sequence. Default 0.
            sample_seed (int | None): Seed of every sample's random draws (scale unless
                ``batch_scale``, crop position, flips, queries). Default None (torch's global RNG).
            total_batch_size (int): The batch of one optimizer step over all processes; BasicSR's
                option parsing sets ``batch_size_per_gpu`` from it (:mod:`gaussiansr_arch.utils.total_batch`).
            batch_size_per_gpu (int): Needed by ``batch_scale``; multiplied by ``num_gpu`` when that key
                is present and ``dist`` is false (BasicSR's DataParallel batching).

    ``batch_scale``: the scale of a sample is ``U(scale_min, scale_max)`` drawn from a generator
    seeded with ``(scale_seed, batch_index)``, so every DDP rank draws the same scale for its
    ``k``-th batch without communicating. ``batch_index = worker_id + num_workers * (calls // batch)``
    counts this process's ``__getitem__`` calls (DataLoader hands batches to workers round-robin).
    Limitations: the sequence restarts whenever workers restart (every epoch unless
    ``persistent_workers``); with ``num_workers: 0`` it continues across epochs and across a
    resume by ``gaussiansr-train`` (:meth:`resume_stream`); the pairing of
    scales with images still changes with the sampler's shuffling; it assumes full batches
    (BasicSR's train loader uses ``drop_last``).

    ``sample_seed``: the draws of the sample at stream position ``n = batch_index * batch + k`` (the
    ``k``-th sample of batch ``batch_index``, counted as above) come from a generator seeded with
    ``(sample_seed, n)``, so runs of *different models* with the same options see identical batches
    (the global RNG is also consumed by weight initialisation and training noise, so the same
    ``manual_seed`` alone does not give that). The same limitations as ``batch_scale`` apply.

    Returns (per sample):
        dict: ``lq`` [3, lr, lr], ``gt`` [Q, 3], ``coord`` [Q, 2], ``cell`` [Q, 2] (all float32, RGB in
        [0, 1]), ``scale`` (float32 scalar tensor, the actual ratio ``c / lr_size``), ``gt_path`` (str).
    """

    OPTION_KEYS = (
        'dataroot_gt',
        'io_backend',
        'meta_info_file',
        'lr_size',
        'scale_min',
        'scale_max',
        'sample_q',
        'use_hflip',
        'use_rot',
        'batch_scale',
        'scale_seed',
        'sample_seed',
        'lr_degradation',
        'total_batch_size',
    )

    def __init__(self, opt: dict):
        super().__init__()
        name = type(self).__name__
        check_options(opt, self.OPTION_KEYS, name)
        if 'dataroot_gt' not in opt:
            raise ValueError(f'{name}: option dataroot_gt is required')
        self.opt = opt
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        backend = backend_of(opt, name)
        self.gt_index = ImageIndex(opt['dataroot_gt'], backend, opt.get('meta_info_file'), 'gt')
        self.file_client = None  # opened lazily: LMDB environments must not cross a fork

        self.lr_size = option_value(opt, 'lr_size', 48, name, 'int')
        if self.lr_size < 1:
            raise ValueError(f'{name}: lr_size must be >= 1, got {opt.get("lr_size")}')
        self.scale_min = check_scale(option_value(opt, 'scale_min', 1, name, 'number'))
        self.scale_max = check_scale(option_value(opt, 'scale_max', 4, name, 'number'))
        if self.scale_min > self.scale_max:
            raise ValueError(f'{name}: scale_min ({self.scale_min}) > scale_max ({self.scale_max})')
        min_crop = max(1, round(self.lr_size * self.scale_min))
        self.sample_q = option_value(opt, 'sample_q', 2304, name, 'int', nullable=True)
        if self.sample_q is None:
            if self.scale_min != self.scale_max:
                raise ValueError(
                    f'{name}: sample_q: null (all pixels) needs a fixed scale '
                    f'(scale_min == scale_max), got [{self.scale_min}, {self.scale_max}]'
                )
        else:
            if not 1 <= self.sample_q <= min_crop * min_crop:
                raise ValueError(
                    f'{name}: sample_q must be in [1, {min_crop * min_crop}] (pixels of the '
                    f'smallest HR crop, {min_crop}x{min_crop}), got {self.sample_q}'
                )
        self.use_hflip = option_value(opt, 'use_hflip', False, name, 'bool')
        self.use_rot = option_value(opt, 'use_rot', False, name, 'bool')
        self.lr_degradation = option_value(
            opt, 'lr_degradation', LR_DEGRADATIONS[0], name, 'choice', choices=LR_DEGRADATIONS
        )

        self.batch_scale = option_value(opt, 'batch_scale', False, name, 'bool')
        self.scale_seed = option_value(opt, 'scale_seed', 0, name, 'int')
        self.sample_seed = option_value(opt, 'sample_seed', None, name, 'int', nullable=True)
        self.batch_size = None
        if self.batch_scale or self.sample_seed is not None:
            if not opt.get('batch_size_per_gpu'):
                key = 'batch_scale' if self.batch_scale else 'sample_seed'
                raise ValueError(f'{name}: {key} needs batch_size_per_gpu')
            self.batch_size = int(opt['batch_size_per_gpu'])
            if not opt.get('dist', False) and int(opt.get('num_gpu', 1) or 1) > 1:
                self.batch_size *= int(opt['num_gpu'])
        self._calls = 0  # __getitem__ calls in this process (each worker has its own copy)

    def __len__(self) -> int:
        return len(self.gt_index.locations)

    def resume_stream(self, batches_done: int) -> None:
        """Count ``batches_done`` batches as drawn, so a resumed run continues the stream's draws.

        Called by :func:`gaussiansr_arch.utils.data_stream.continue_data_stream` on the process's
        dataset (exact with ``num_worker_per_gpu: 0``; worker copies restart every epoch anyway).
        """
        if self.batch_size is not None:
            self._calls = batches_done * self.batch_size

    def batch_scale_for(self, batch_index: int) -> float:
        """The scale of batch ``batch_index`` in ``batch_scale`` mode (same on every rank)."""
        rng = np.random.default_rng([self.scale_seed, batch_index])
        return float(rng.uniform(self.scale_min, self.scale_max))

    def _stream_position(self) -> tuple[int, int]:
        """(batch index, position in the batch) of this ``__getitem__`` call (see the class docstring)."""
        info = torch.utils.data.get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        batch_index = worker_id + num_workers * (self._calls // self.batch_size)
        position = self._calls % self.batch_size
        self._calls += 1
        return batch_index, position

    def _sample_generator(self, stream_position: int) -> torch.Generator:
        """The generator of the sample at ``stream_position`` (``sample_seed`` mode)."""
        seed = np.random.SeedSequence([self.sample_seed, stream_position]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(seed))

    def __getitem__(self, index: int) -> dict:
        if self.file_client is None:
            self.file_client = make_file_client(self.io_backend_opt, [self.gt_index])
        generator = None
        if self.batch_size is not None:
            batch_index, position = self._stream_position()
            if self.sample_seed is not None:
                generator = self._sample_generator(batch_index * self.batch_size + position)
        if self.batch_scale:
            scale = self.batch_scale_for(batch_index)
        else:
            scale = self.scale_min + (self.scale_max - self.scale_min) * torch.rand((), generator=generator).item()
        crop = max(1, round(self.lr_size * scale))
        img = self.gt_index.read(self.file_client, index)
        h, w = img.shape[:2]
        if h < crop or w < crop:
            raise ValueError(
                f'HR image {self.gt_index.name(index)} ({h}x{w}) is smaller than the '
                f'{crop}x{crop} crop (lr_size {self.lr_size} x scale up to {self.scale_max})'
            )
        top = int(torch.randint(0, h - crop + 1, (), generator=generator).item())
        left = int(torch.randint(0, w - crop + 1, (), generator=generator).item())
        hr = np.ascontiguousarray(img[top : top + crop, left : left + crop])
        lr = make_lr(hr, (self.lr_size, self.lr_size), self.lr_degradation)

        # same flips / transpose on both (BasicSR's augment: hflip, and rot = vflip + transpose)
        flips = torch.rand(3, generator=generator)
        if self.use_hflip and flips[0] < 0.5:
            hr, lr = hr[:, ::-1], lr[:, ::-1]
        if self.use_rot and flips[1] < 0.5:
            hr, lr = hr[::-1], lr[::-1]
        if self.use_rot and flips[2] < 0.5:
            hr, lr = hr.transpose(1, 0, 2), lr.transpose(1, 0, 2)

        hr_flat = torch.from_numpy(np.ascontiguousarray(hr)).reshape(-1, 3)
        coord = make_coord((crop, crop))
        if self.sample_q is not None:
            idx = torch.randperm(crop * crop, generator=generator)[: self.sample_q]
            hr_flat, coord = hr_flat[idx], coord[idx]
        return {
            'lq': torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
            'gt': hr_flat.contiguous(),
            'coord': coord,
            'cell': make_cell((crop, crop), coord.shape[0]),
            'scale': torch.tensor(crop / self.lr_size, dtype=torch.float32),
            'gt_path': self.gt_index.name(index),
        }


@DATASET_REGISTRY.register()
class ArbitraryScalePairedDataset(data.Dataset):
    """Validation / test dataset: whole LR/HR pairs at one (possibly non-integer) scale.

    Without ``dataroot_lq`` the LR is made from the HR: ``h_lr = floor(H / s)``, HR cropped
    (top-left) to ``round(h_lr * s)``, LR = bicubic to exactly (h_lr, w_lr), 8-bit (MATLAB by default,
    PIL with ``lr_degradation: pil``).
    With ``dataroot_lq``, the LR named ``filename_tmpl.format(gt_stem)`` is used; a HR with
    ``floor(H / s) == h_lr`` (for integer s: larger than ``round(h_lr * s)`` by less than ``s``) is
    cropped to ``round(h_lr * s)``, any other size pair is an error naming both files.

    Args:
        opt (dict): Options:
            dataroot_gt (str): HR folder or ``*.lmdb``.
            dataroot_lq (str, optional): LR folder or ``*.lmdb`` (same io_backend type).
            io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
            filename_tmpl (str): LR stem from HR stem. Default ``'{}'`` (e.g. ``'{}x4'``).
            scale (float): Scale factor, e.g. 2, 2.4, 3.6, 12.
            meta_info_file (str, optional): HR image list.
            lr_degradation (str): How the LR is made from the HR when there is no ``dataroot_lq``:
                ``matlab`` (default; MATLAB antialiased bicubic, rounded to 8 bits, like the DIV2K /
                benchmark LR files) or ``pil`` (LIIF's ``resize_fn``, as in LIIF's x6-x30 DIV2K
                evaluation). See :func:`make_lr`. With ``dataroot_lq`` the LR files are used as
                they are and this option has no effect (any allowed value is accepted).
            protocol (str, optional): A paper's evaluation protocol (``liif``, ``gsasr``,
                ``continuoussr``; :data:`~gaussiansr_arch.data.protocol.PROTOCOLS`): ``lr_degradation``
                defaults to the protocol's at this scale, and an entry that contradicts the protocol
                (LR files where it makes the LR from the HR, another ``lr_degradation``) is an error.

    Returns (per sample):
        dict: ``lq`` [3, h, w], ``gt`` [3, H, W] float32 RGB in [0, 1], ``lq_path``, ``gt_path`` (str),
        ``scale`` (float).
    """

    OPTION_KEYS = (
        'dataroot_gt',
        'dataroot_lq',
        'io_backend',
        'filename_tmpl',
        'scale',
        'meta_info_file',
        'lr_degradation',
        'protocol',
    )

    def __init__(self, opt: dict):
        super().__init__()
        name = type(self).__name__
        check_options(opt, self.OPTION_KEYS, name)
        for key in ('dataroot_gt', 'scale'):
            if opt.get(key) is None:
                raise ValueError(f'{name}: option {key} is required')
        self.opt = opt
        self.scale = check_scale(option_value(opt, 'scale', None, name, 'number'))
        self.protocol = None
        if opt.get('protocol') is not None:
            try:
                self.protocol = get_protocol(opt['protocol'])
            except ValueError as e:
                raise ValueError(f'{name}: option protocol: {e}') from None
        default_degradation = self.protocol.lr_degradation(self.scale) if self.protocol else LR_DEGRADATIONS[0]
        self.lr_degradation = option_value(
            opt, 'lr_degradation', default_degradation, name, 'choice', choices=LR_DEGRADATIONS
        )
        if self.protocol:
            self._check_protocol(opt, name)
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        backend = backend_of(opt, name)
        self.filename_tmpl = opt.get('filename_tmpl', '{}')
        self.gt_index = ImageIndex(opt['dataroot_gt'], backend, opt.get('meta_info_file'), 'gt')
        self.lq_index = None
        self.lq_of = None
        if opt.get('dataroot_lq'):
            self.lq_index = ImageIndex(opt['dataroot_lq'], backend, None, 'lq')
            self.lq_of = []
            for i, stem in enumerate(self.gt_index.stems):
                lq_stem = self.filename_tmpl.format(stem)
                if lq_stem not in self.lq_index.by_stem:
                    raise FileNotFoundError(
                        f'no LR image {lq_stem!r} in {self.lq_index.root} for HR '
                        f'{self.gt_index.name(i)} (filename_tmpl {self.filename_tmpl!r})'
                    )
                self.lq_of.append(self.lq_index.by_stem[lq_stem])
        self.file_client = None

    def _check_protocol(self, opt: dict, name: str) -> None:
        """One-line errors for an entry that contradicts its ``protocol``."""
        proto, scale = self.protocol, f'x{self.scale:g}'
        if opt.get('dataroot_lq') and not proto.reads_lr_files(self.scale):
            raise ValueError(
                f'{name}: protocol {proto.name} makes the LR from the HR at {scale} '
                f'({proto.lr_degradation(self.scale)} bicubic): drop dataroot_lq'
            )
        if not opt.get('dataroot_lq') and self.lr_degradation != proto.lr_degradation(self.scale):
            raise ValueError(
                f'{name}: protocol {proto.name} makes the LR by {proto.lr_degradation(self.scale)} bicubic at '
                f'{scale}, not lr_degradation {self.lr_degradation}'
            )

    def __len__(self) -> int:
        return len(self.gt_index.locations)

    def __getitem__(self, index: int) -> dict:
        indexes = [self.gt_index] + ([self.lq_index] if self.lq_index else [])
        if self.file_client is None:
            self.file_client = make_file_client(self.io_backend_opt, indexes)
        gt_name = self.gt_index.name(index)
        hr = self.gt_index.read(self.file_client, index)
        if self.lq_index is None:
            try:
                (hr_h, hr_w), lr_size = hr_crop_and_lr_size(hr.shape[:2], self.scale)
            except ValueError as err:
                raise ValueError(f'HR {gt_name}: {err}') from None
            hr = np.ascontiguousarray(hr[:hr_h, :hr_w])
            lr = make_lr(hr, lr_size, self.lr_degradation)
            lq_name = gt_name  # made from the HR: same name, so SRModel saves results under it
        else:
            j = self.lq_of[index]
            lq_name = self.lq_index.name(j)
            lr = self.lq_index.read(self.file_client, j)
            want = hr_crop_for_lr(lr.shape[:2], self.scale)
            have = hr.shape[:2]
            # accept exactly the HR sizes whose protocol LR size floor(H / s) is this LR's size (for an
            # integer s: HR larger than round(h_lr * s) by less than s); the HR is then cropped
            if not lr_size_matches(have, lr.shape[:2], self.scale):
                raise ValueError(
                    f'size mismatch at scale {self.scale:g}: HR {gt_name} is '
                    f'{have[0]}x{have[1]}, LR {lq_name} is {lr.shape[0]}x{lr.shape[1]} '
                    f'(expects HR {want[0]}x{want[1]})'
                )
            hr = np.ascontiguousarray(hr[: want[0], : want[1]])
        return {
            'lq': torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
            'gt': torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))),
            'lq_path': lq_name,
            'gt_path': gt_name,
            'scale': self.scale,
        }
