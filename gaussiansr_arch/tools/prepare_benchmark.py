"""Check benchmark sets, make LR for any scale, and optionally pack them as LMDBs.

``gaussiansr-prepare-benchmark``. Input layout (LIIF's / BasicSR's benchmark layout)::

    ROOT/Set5/HR/baby.png ...
    ROOT/Set5/LR_bicubic/X2/babyx2.png ...   (optional, shipped MATLAB-bicubic LR)

Set5, Set14, B100, Urban100, Manga109 and General100 all use it. General100 (FSRCNN's General-100)
is a flat folder of 100 BMP HR images without LR: put them in ``ROOT/General100/HR/``; its x2/x3/x4
LR is then generated like any missing scale. A known set holding images directly (no ``HR/``) is
an error saying so, not silently skipped.

For each requested scale: shipped LR is checked against the HR (``floor(H / s) == h_lr``), a
missing scale is generated with MATLAB bicubic from the HR (cropped so ``h_lr = floor(H / s)``),
named ``<stem>x<s>.png`` like the shipped files.

``--format folder`` (default) writes generated LR to ``OUT/<set>/LR_bicubic/X<s>/`` (OUT defaults
to ROOT). ``--format lmdb`` writes ``OUT/<set>/HR.lmdb`` and ``OUT/<set>/LR_bicubic_X<s>.lmdb``.
Use with ``ArbitraryScalePairedDataset`` and ``filename_tmpl: '{}x<s>'``.
"""

import argparse
import os
import os.path as osp
import sys
from collections.abc import Iterable

from gaussiansr_arch.data.protocol import lr_size_matches
from gaussiansr_arch.toolkit.lmdb_tools import Task, build_output, scale_tag, scan_images, worker_pool
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_prepare_args,
    check_output_dir,
    check_prepare_args,
    run_builds,
)
from gaussiansr_arch.utils.image_io import ImageReadError, read_image

KNOWN_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109', 'General100')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='gaussiansr-prepare-benchmark',
        description='Check benchmark sets (<set>/HR, <set>/LR_bicubic/X<s>), generate MATLAB-bicubic LR '
        'for any scale, optionally pack as LMDBs. Outputs are built in <out>.tmp-<pid> and renamed when '
        'complete.',
        epilog='General100 (the FSRCNN release: BMP HR images, no LR) goes in <root>/General100/HR/ like the '
        'other sets; its x2/x3/x4 LR is generated like any missing scale. '
        'example: gaussiansr-prepare-benchmark --root datasets/benchmark --scales 2 3 4 2.4 6 --verify',
    )
    parser.add_argument('--root', required=True, help=f'folder holding {"/, ".join(KNOWN_SETS)}/ ... each with HR/')
    parser.add_argument('--out', help='output folder (default: ROOT)')
    parser.add_argument(
        '--datasets',
        nargs='+',
        metavar='NAME',
        help=f'sets to prepare (default: every ROOT/<name>/HR, e.g. {" ".join(KNOWN_SETS)})',
    )
    parser.add_argument(
        '--scales', nargs='+', default=['2', '3', '4'], metavar='S', help='scales, integer or not (default 2 3 4)'
    )
    parser.add_argument(
        '--format',
        choices=('folder', 'lmdb'),
        default='folder',
        help='folder: check + write missing LR as PNG; lmdb: also pack HR and LR (default folder)',
    )
    add_prepare_args(parser)
    return parser


def _size(path: str):
    try:
        return path, read_image(path).shape[:2], None
    except ImageReadError as err:
        return path, None, str(err)


def check_pairs(hr_dir: str, lr_dir: str, scale: float, workers: int, skip_bad: bool) -> list:
    """Check that every HR in ``hr_dir`` has ``<stem>x<s>`` in ``lr_dir`` with ``floor(H/s) == h_lr``.

    Returns:
        list[str]: LR file names in HR order.
    """
    hr_names = scan_images(hr_dir)
    lr_by_stem = {osp.splitext(n)[0]: n for n in scan_images(lr_dir)}
    lr_names = []
    for n in hr_names:
        want = f'{osp.splitext(n)[0]}x{scale:g}'
        if want not in lr_by_stem:
            raise ToolError(f'no LR {want}.* in {lr_dir} for HR {osp.join(hr_dir, n)}')
        lr_names.append(lr_by_stem[want])
    paths = [osp.join(hr_dir, n) for n in hr_names] + [osp.join(lr_dir, n) for n in lr_names]
    if workers > 1:
        with worker_pool(min(workers, len(paths))) as pool:
            sizes = pool.map(_size, paths)
    else:
        sizes = [_size(p) for p in paths]
    for _, _, err in sizes:
        if err and not skip_bad:
            raise ToolError(f'{err} (use --skip-bad to skip unreadable images)')
    half = len(hr_names)
    for (hr_path, hr_size, _), (lr_path, lr_size, _) in zip(sizes[:half], sizes[half:]):
        if hr_size is None or lr_size is None:
            continue
        if not lr_size_matches(hr_size, lr_size, scale):
            raise ToolError(
                f'size mismatch at x{scale:g}: HR {hr_path} is {hr_size[0]}x{hr_size[1]}, '
                f'LR {lr_path} is {lr_size[0]}x{lr_size[1]} (expected floor(HR / {scale:g}))'
            )
    return lr_names


def _holds_images(folder: str) -> bool:
    try:
        return bool(scan_images(folder))
    except ToolError:
        return False


def _hr_dir(root: str, name: str) -> str:
    """``<root>/<name>/HR``; ToolError if missing, saying where images found in ``<root>/<name>`` belong."""
    hr_dir = osp.join(root, name, 'HR')
    if osp.isdir(hr_dir):
        return hr_dir
    if _holds_images(osp.join(root, name)):
        raise ToolError(
            f'{hr_dir} does not exist but {osp.join(root, name)} holds images: move them into '
            f'{hr_dir} (a set released as one flat folder, e.g. General100, goes in <set>/HR)'
        )
    raise ToolError(f'{hr_dir} does not exist (expected <root>/<set>/HR)')


def prepare_set(args, name: str) -> list:
    """Prepare one set; returns the LMDB paths written or found (for --verify)."""
    src = osp.join(args.root, name)
    hr_dir = _hr_dir(args.root, name)
    dst = osp.join(args.out or args.root, name)
    hr_names = scan_images(hr_dir)
    lmdbs = []
    if args.format == 'lmdb':
        out = osp.join(dst, 'HR.lmdb')
        tasks = [Task(osp.join(hr_dir, n), osp.splitext(n)[0]) for n in hr_names]
        build_output(out, tasks, 'lmdb', args.workers, args.overwrite, args.skip_bad, args.compress_level)
        lmdbs.append(out)
    for s in args.scales:
        tag = scale_tag(s)
        shipped = osp.join(src, 'LR_bicubic', tag)
        if osp.isdir(shipped):
            lr_names = check_pairs(hr_dir, shipped, s, args.workers, args.skip_bad)
            print(f'{name} {tag}: {len(lr_names)} shipped LR images match their HR')
            if args.format == 'lmdb':
                out = osp.join(dst, f'LR_bicubic_{tag}.lmdb')
                tasks = [Task(osp.join(shipped, n), osp.splitext(n)[0]) for n in lr_names]
                build_output(out, tasks, 'lmdb', args.workers, args.overwrite, args.skip_bad, args.compress_level)
                lmdbs.append(out)
            continue
        tasks = [Task(osp.join(hr_dir, n), f'{osp.splitext(n)[0]}x{s:g}', 'lr', {'scale': s}) for n in hr_names]
        if args.format == 'lmdb':
            out = osp.join(dst, f'LR_bicubic_{tag}.lmdb')
            lmdbs.append(out)
        else:
            out = osp.join(dst, 'LR_bicubic', tag)
        build_output(out, tasks, args.format, args.workers, args.overwrite, args.skip_bad, args.compress_level)
    return lmdbs


def _build_all(args) -> Iterable[str]:
    """Prepare every benchmark set, yielding each finished LMDB path."""
    if not osp.isdir(args.root):
        raise ToolError(f'--root {args.root} does not exist')
    # known sets released as a flat folder of images (General100) are listed too, to be reported
    names = args.datasets or sorted(
        n
        for n in os.listdir(args.root)
        if osp.isdir(osp.join(args.root, n, 'HR')) or (n in KNOWN_SETS and _holds_images(osp.join(args.root, n)))
    )
    if not names:
        raise ToolError(f'no <set>/HR folders in {args.root}')
    for name in names:  # every layout is checked before anything is built
        _hr_dir(args.root, name)
    check_output_dir(args.out or args.root)
    for name in names:
        yield from prepare_set(args, name)


def _run(args: argparse.Namespace) -> None:
    check_prepare_args(args, 'scales')
    run_builds(_build_all(args), args.verify)


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())
