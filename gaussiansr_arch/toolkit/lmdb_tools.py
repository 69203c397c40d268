"""Shared machinery of the data preparation tools (``gaussiansr-prepare-div2k`` / ``-benchmark``), as a
library: scanning, tasks, building an output safely, verifying an LMDB. Their shared command-line
options and driver (``add_prepare_args``, ``check_prepare_args``, ``run_builds``) are in
``tools/common.py``.

Safety rules every output follows:

* it is built in ``<out>.tmp-<pid>`` and moved to ``<out>`` with ``os.replace`` only when complete,
  so an interrupted or failed run never leaves anything under the final name;
* an existing ``<out>`` is reported and left alone unless ``overwrite`` is set;
* an unreadable source image stops the run with a message naming it (or is skipped and listed
  with ``skip_bad``);
* an output that cannot be written (a folder under a file, no permission, a full disk) stops the
  run with one line naming it, and the temporary build is removed.

Errors are the tools' :class:`~gaussiansr_arch.toolkit.errors.ToolError`: one line ``error: ...``
on stderr and exit status 2, as for every tool.

Images are read with :mod:`gaussiansr_arch.utils.image_io` (grayscale -> RGB, alpha dropped,
16-bit -> 8-bit), so every stored image is 3-channel 8-bit PNG, and LMDBs are written with
basicsr's ``LmdbMaker`` (keys = file stems, ``meta_info.txt`` lines ``name.png (h,w,3) level``).
"""

import multiprocessing
import os
import os.path as osp
import shutil
import sys
from collections.abc import Iterable

import cv2
import numpy as np
from tqdm import tqdm

from gaussiansr_arch.data.image_sources import shared_lmdb_env
from gaussiansr_arch.data.protocol import hr_crop_and_lr_size, make_lr_uint8
from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.toolkit.outputs import os_error_reason
from gaussiansr_arch.utils.atomic import make_folders, remove_folders
from gaussiansr_arch.utils.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_image, read_image

__all__ = [
    'ToolError',
    'Task',
    'scan_images',
    'subimage_origins',
    'run_tasks',
    'build_output',
    'verify_lmdb',
    'scale_tag',
    'default_workers',
    'worker_pool',
]


def default_workers() -> int:
    return os.cpu_count() or 1


def scale_tag(scale: float) -> str:
    """``2.0 -> 'X2'``, ``2.4 -> 'X2.4'``: folder / LMDB name part of a scale."""
    return f'X{float(scale):g}'


def scan_images(folder: str) -> list:
    """Sorted image file names (not recursive) of ``folder``; ToolError if missing or empty."""
    if not osp.isdir(folder):
        raise ToolError(f'folder {folder} does not exist')
    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(folder, n))
    )
    if not names:
        raise ToolError(f'folder {folder} contains no images ({", ".join(IMAGE_EXTENSIONS)})')
    return names


def subimage_origins(length: int, crop_size: int, step: int, thresh_size: int) -> list:
    """Start offsets of sub-images along one axis (BasicSR's DIV2K recipe).

    Starts every ``step`` pixels; a last crop flush with the border is added when the remainder
    exceeds ``thresh_size``. An axis shorter than ``crop_size`` gives one crop at 0 of the axis.
    """
    if length <= crop_size:
        return [0]
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


class Task:
    """One source image and what to make of it (picklable; runs in a worker process).

    Args:
        src (str): Source image path.
        key (str): Output key (stem) of the result (sub-images get ``_s###`` appended).
        mode (str): ``'copy'``, ``'sub'`` (sub-images) or ``'lr'`` (MATLAB bicubic LR).
        params (dict): ``crop_size, step, thresh_size`` for ``sub``; ``scale`` for ``lr``.
    """

    def __init__(self, src: str, key: str, mode: str = 'copy', params: dict | None = None):
        self.src, self.key, self.mode, self.params = src, key, mode, params or {}


def _encode_png(img_rgb: np.ndarray, level: int) -> bytes:
    bgr = np.ascontiguousarray(img_rgb[:, :, ::-1])
    ok, buf = cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError('PNG encoding failed')
    return buf.tobytes()


def _run_task(args) -> tuple:
    """Worker: returns ``('ok', [(key, png_bytes, (h, w, 3)), ...])`` or ``('err', src, message)``."""
    task, level = args
    try:
        img = read_image(task.src)
        p = task.params
        if task.mode == 'copy':
            parts = [(task.key, img)]
        elif task.mode == 'sub':
            h, w = img.shape[:2]
            c = p['crop_size']
            parts = []
            for y in subimage_origins(h, c, p['step'], p['thresh_size']):
                for x in subimage_origins(w, c, p['step'], p['thresh_size']):
                    parts.append((f'{task.key}_s{len(parts) + 1:03d}', img[y : y + c, x : x + c]))
        elif task.mode == 'lr':
            (hr_h, hr_w), lr_size = hr_crop_and_lr_size(img.shape[:2], p['scale'])
            parts = [(task.key, make_lr_uint8(img[:hr_h, :hr_w], lr_size))]
        else:
            raise ValueError(f'unknown task mode {task.mode!r}')
        return 'ok', [(key, _encode_png(part, level), tuple(part.shape)) for key, part in parts]
    except (ImageReadError, ValueError, OSError) as err:
        return 'err', task.src, str(err).splitlines()[0] if str(err) else type(err).__name__


def _single_threaded_worker() -> None:
    # what DataLoader does in its workers: a worker forked from a process whose torch (OpenMP) thread
    # pool has run hangs in its first multi-threaded op; one thread per worker never enters OpenMP.
    # Not cv2.setNumThreads: in a child forked after OpenCV's pool ran, that call itself hangs (seen),
    # while OpenCV's own operations there are fine.
    import torch

    torch.set_num_threads(1)


def worker_pool(processes: int):
    """A process pool for reading and resizing images whose workers run single-threaded.

    Forked (so scripts calling the tools need no ``if __name__ == '__main__'`` guard), each worker
    first drops to one torch thread: the tools also run inside processes that have
    already used torch's thread pool (the test suite, notebooks), where a forked worker otherwise
    hangs for ever in its first parallel torch op (seen: the suite hung in ``prepare_benchmark``).
    """
    return multiprocessing.Pool(processes, initializer=_single_threaded_worker)


def run_tasks(tasks: list, workers: int, level: int = 1, desc: str = '') -> Iterable:
    """Yield ``_run_task`` results in task order, reading with a Pool of ``workers`` processes."""
    args = [(t, level) for t in tasks]
    bar = tqdm(total=len(tasks), unit='image', desc=desc, file=sys.stderr, dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for a in args:
                yield _run_task(a)
                bar.update(1)
        else:
            with worker_pool(min(workers, len(tasks))) as pool:
                for result in pool.imap(_run_task, args, chunksize=1):
                    yield result
                    bar.update(1)
    finally:
        bar.close()


class _LmdbSink:
    """Writes into an LMDB with basicsr's LmdbMaker (its path must end with .lmdb, hence the inner name)."""

    def __init__(self, tmp_dir: str, final_name: str, level: int):
        from basicsr.utils.lmdb_util import LmdbMaker

        self.path = osp.join(tmp_dir, final_name if final_name.endswith('.lmdb') else final_name + '.lmdb')
        self.maker = LmdbMaker(self.path, compress_level=level)

    def put(self, key: str, content: bytes, shape: tuple) -> None:
        self.maker.put(content, key, shape)

    def close(self) -> None:
        self.maker.close()

    def abort(self) -> None:
        # a write transaction left open on a deleted environment crashes py-lmdb when collected later
        self.maker.txn.abort()
        self.maker.env.close()
        self.maker.txt_file.close()


class _FolderSink:
    """Writes ``<key>.png`` files into a folder."""

    def __init__(self, tmp_dir: str, final_name: str, level: int):
        self.path = osp.join(tmp_dir, final_name)
        os.makedirs(self.path)

    def put(self, key: str, content: bytes, shape: tuple) -> None:
        with open(osp.join(self.path, f'{key}.png'), 'wb') as f:
            f.write(content)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _check_keys(tasks: list) -> None:
    seen = {}
    for t in tasks:
        if not t.key.isascii() or ' ' in t.key:
            raise ToolError(f'image {t.src}: key {t.key!r} must be ASCII without spaces (LMDB keys, meta_info)')
        if t.key in seen:
            raise ToolError(f'images {seen[t.key]} and {t.src} give the same key {t.key!r}')
        seen[t.key] = t.src


def build_output(
    out: str,
    tasks: list,
    fmt: str = 'lmdb',
    workers: int = 1,
    overwrite: bool = False,
    skip_bad: bool = False,
    level: int = 1,
    desc: str = '',
) -> bool:
    """Build one LMDB (``fmt='lmdb'``) or PNG folder (``fmt='folder'``) at ``out``, atomically.

    Args:
        out (str): Final path (``*.lmdb`` for LMDBs).
        tasks (list[Task]): What to write, in order.
        fmt (str): ``'lmdb'`` or ``'folder'``.
        workers (int): Reading processes.
        overwrite (bool): Replace an existing ``out``.
        skip_bad (bool): Skip (and list) unreadable sources instead of stopping.
        level (int): PNG compression level.
        desc (str): Progress bar label.

    Returns:
        bool: True if built, False if ``out`` already existed (and was left alone).

    Raises:
        ToolError: unreadable source (without ``skip_bad``), duplicate key, nothing to write, or
            ``out`` cannot be written (folder not creatable, no permission, disk full); the
            temporary build is removed and ``out`` left as it was.
    """
    import lmdb

    out = osp.abspath(out)
    if osp.exists(out) and not overwrite:
        print(f'{out} already exists, skipping (use --overwrite to rebuild)')
        return False
    if not tasks:
        raise ToolError(f'nothing to write to {out}')
    _check_keys(tasks)
    tmp_dir = f'{out}.tmp-{os.getpid()}'
    try:
        written, bad = _build(out, tmp_dir, tasks, fmt, workers, skip_bad, level, desc)
    except OSError as err:
        raise ToolError(f'cannot write {out}: {os_error_reason(err)}') from None
    except lmdb.Error as err:  # e.g. a full disk while the LMDB grows
        raise ToolError(f'cannot write {out}: {" ".join(str(err).split()) or type(err).__name__}') from None
    print(f'wrote {written} images to {out}' + (f' (skipped {len(bad)} unreadable)' if bad else ''))
    return True


def _build(
    out: str, tmp_dir: str, tasks: list, fmt: str, workers: int, skip_bad: bool, level: int, desc: str
) -> tuple[int, list]:
    """The body of :func:`build_output`: build in ``tmp_dir``, then move it to ``out``; (written, skipped)."""
    if osp.exists(tmp_dir):
        shutil.rmtree(tmp_dir)  # our own pid: a leftover of a crashed earlier run with a reused pid
    created = make_folders(osp.dirname(tmp_dir))  # removed again if the build fails
    bad = []
    sink, done = None, False
    try:
        os.makedirs(tmp_dir)
        sink = (_LmdbSink if fmt == 'lmdb' else _FolderSink)(tmp_dir, osp.basename(out), level)
        written = 0
        for result in run_tasks(tasks, workers, level, desc or osp.basename(out)):
            if result[0] == 'err':
                _, src, msg = result
                if not skip_bad:
                    raise ToolError(f'{msg} (use --skip-bad to skip unreadable images)')
                bad.append(src)
                print(f'skipping unreadable image {src}: {msg}', file=sys.stderr)
                continue
            for key, content, shape in result[1]:
                sink.put(key, content, shape)
                written += 1
        sink.close()
        built, sink = sink.path, None
        if written == 0:
            raise ToolError(f'no readable images for {out}')
        if osp.exists(out):  # --overwrite: move the old one aside first so `out` is never half-built
            old = f'{out}.old-{os.getpid()}'
            os.replace(out, old)
            os.replace(built, out)
            shutil.rmtree(old)
        else:
            os.replace(built, out)
        done = True
    finally:
        if sink is not None:  # failed or interrupted before the sink was closed
            sink.abort()
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not done:
            remove_folders(created)
    return written, bad


def verify_lmdb(path: str) -> list:
    """Re-read every key of an LMDB and compare with its meta_info.txt.

    Returns:
        list[str]: Problems found (empty when the LMDB is consistent).
    """
    meta = osp.join(path, 'meta_info.txt')
    if not osp.isfile(osp.join(path, 'data.mdb')):
        return [f'{path} is not an LMDB (no data.mdb)']
    if not osp.isfile(meta):
        return [f'{meta} is missing']
    problems, listed = [], set()
    env = shared_lmdb_env(path)  # shared: a dataset of this process may hold the LMDB open already
    with env.begin(write=False) as txn, open(meta) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                name, shape_text = fields[0], fields[1]
                shape = tuple(int(v) for v in shape_text.strip('()').split(','))
            except (IndexError, ValueError):
                problems.append(f'{meta} line {n}: malformed {line.strip()!r}')
                continue
            key = osp.splitext(name)[0]
            listed.add(key)
            content = txn.get(key.encode('ascii'))
            if content is None:
                problems.append(f'key {key!r} listed in {meta} is missing from {path}')
                continue
            try:
                img = decode_image(content, f'LMDB {path} key {key!r}', channel_order='bgr')
            except ImageReadError as err:
                problems.append(str(err))
                continue
            if tuple(img.shape) != shape and tuple(img.shape[:2]) + (1,) != shape:
                problems.append(f'key {key!r}: meta_info says {shape}, stored image is {tuple(img.shape)}')
        stored = {bytes(k).decode('ascii', 'replace') for k in txn.cursor().iternext(values=False)}
        extra = len(stored - listed)
        if extra:
            problems.append(f'{extra} key(s) in {path} are not listed in {meta}')
    return problems


def verify_or_fail(path: str) -> None:
    """Run :func:`verify_lmdb` and raise ToolError with the first problems if any."""
    problems = verify_lmdb(path)
    if problems:
        more = f' (+{len(problems) - 3} more)' if len(problems) > 3 else ''
        raise ToolError(f'verify {path}: ' + '; '.join(problems[:3]) + more)
    print(f'verified {path}: OK')
