"""Prepare DIV2K for training and validation: sub-images and LMDBs (``gaussiansr-prepare-div2k``).

Input (a local copy of DIV2K; nothing is downloaded)::

    ROOT/DIV2K_train_HR/0001.png ...                 (required unless --parts excludes train)
    ROOT/DIV2K_valid_HR/0801.png ...                 (optional)
    ROOT/DIV2K_valid_LR_bicubic/X2/0801x2.png ...    (optional, X2..X4)

Output in OUT (default ROOT)::

    DIV2K_train_HR_sub.lmdb        480x480 sub-images, step 240 (BasicSR's recipe), keys 0001_s001 ...
                                   (DIV2K_train_HR.lmdb with --no-subimages)
    DIV2K_valid_HR.lmdb            keys 0801 ...
    DIV2K_valid_LR_bicubic_X2.lmdb keys 0801x2 ... (shipped LR), and X<s> for every --lr-scales s
                                   (MATLAB bicubic from the HR, HR cropped so h_lr = floor(H/s))

Use with ``io_backend: {type: lmdb}`` and, for LR, ``filename_tmpl: '{}x2'``.
"""

import argparse
import os.path as osp
import sys
from collections.abc import Iterable

from gaussiansr_arch.toolkit.lmdb_tools import Task, build_output, scale_tag, scan_images
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_prepare_args,
    check_output_dir,
    check_prepare_args,
    run_builds,
)

SHIPPED_SCALES = (2, 3, 4)
PARTS = ('train', 'valid', 'valid_lr')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='gaussiansr-prepare-div2k',
        description='Make DIV2K LMDBs (train sub-images, valid HR, valid LR) from a local DIV2K copy. '
        'Each output is built in <out>.tmp-<pid> and renamed when complete; existing outputs are kept '
        'unless --overwrite.',
        epilog='example: gaussiansr-prepare-div2k --root datasets/DIV2K --lr-scales 1.5 2.4 3.6 --verify',
    )
    parser.add_argument('--root', required=True, help='folder holding DIV2K_train_HR, DIV2K_valid_HR ...')
    parser.add_argument('--out', help='output folder (default: ROOT)')
    parser.add_argument(
        '--parts',
        nargs='+',
        choices=PARTS,
        default=list(PARTS),
        help='what to build (default: all that exist; train is required to exist)',
    )
    parser.add_argument(
        '--no-subimages', action='store_true', help='store whole training images instead of 480x480 sub-images'
    )
    parser.add_argument('--crop-size', type=int, default=480, help='sub-image size (default 480)')
    parser.add_argument('--step', type=int, default=240, help='sub-image step (default 240)')
    parser.add_argument(
        '--thresh-size',
        type=int,
        default=0,
        help='add a border-flush sub-image when the remainder exceeds this (default 0)',
    )
    parser.add_argument(
        '--lr-scales',
        nargs='*',
        default=[],
        metavar='S',
        help='also make MATLAB-bicubic valid LR LMDBs for these scales, e.g. 1.5 2.4 3.6 6',
    )
    add_prepare_args(parser)
    return parser


def _tasks(folder: str, key_fmt: str = '{}', mode: str = 'copy', params: dict | None = None) -> list:
    return [Task(osp.join(folder, n), key_fmt.format(osp.splitext(n)[0]), mode, params) for n in scan_images(folder)]


def plan(args) -> list:
    """List of (output path, tasks) to build."""
    root = args.root
    out = args.out or root
    jobs = []
    if 'train' in args.parts:
        train = osp.join(root, 'DIV2K_train_HR')
        if not osp.isdir(train):
            raise ToolError(f'{train} does not exist (use --parts to build only the validation sets)')
        if args.no_subimages:
            jobs.append((osp.join(out, 'DIV2K_train_HR.lmdb'), _tasks(train)))
        else:
            params = {'crop_size': args.crop_size, 'step': args.step, 'thresh_size': args.thresh_size}
            jobs.append((osp.join(out, 'DIV2K_train_HR_sub.lmdb'), _tasks(train, mode='sub', params=params)))
    valid = osp.join(root, 'DIV2K_valid_HR')
    if 'valid' in args.parts and osp.isdir(valid):
        jobs.append((osp.join(out, 'DIV2K_valid_HR.lmdb'), _tasks(valid)))
    if 'valid_lr' in args.parts:
        shipped = set()
        for s in SHIPPED_SCALES:
            folder = osp.join(root, 'DIV2K_valid_LR_bicubic', f'X{s}')
            if osp.isdir(folder):
                shipped.add(float(s))
                jobs.append((osp.join(out, f'DIV2K_valid_LR_bicubic_{scale_tag(s)}.lmdb'), _tasks(folder)))
        for s in args.lr_scales:
            if s in shipped:
                continue  # the LR shipped with DIV2K wins over a regenerated one
            if not osp.isdir(valid):
                raise ToolError(f'--lr-scales needs {valid}')
            jobs.append(
                (
                    osp.join(out, f'DIV2K_valid_LR_bicubic_{scale_tag(s)}.lmdb'),
                    _tasks(valid, '{}x' + f'{s:g}', 'lr', {'scale': s}),
                )
            )
    if not jobs:
        raise ToolError(f'nothing to build from {root}')
    return jobs


def _build_all(args) -> Iterable[str]:
    """Build every planned LMDB, yielding each path once it is complete."""
    jobs = plan(args)
    check_output_dir(args.out or args.root)
    for out, tasks in jobs:
        build_output(out, tasks, 'lmdb', args.workers, args.overwrite, args.skip_bad, args.compress_level)
        yield out


def _run(args: argparse.Namespace) -> None:
    check_prepare_args(args, 'lr_scales')
    if min(args.crop_size, args.step) < 1 or args.thresh_size < 0:
        raise ToolError('--crop-size and --step must be >= 1, --thresh-size >= 0')
    run_builds(_build_all(args), args.verify)


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())
