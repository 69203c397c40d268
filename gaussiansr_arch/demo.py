"""The embedded demo (``gaussiansr-demo``): the whole BasicSR workflow on photos that ship with
scikit-image, on the CPU, in a few minutes, with nothing downloaded.

1. writes real photos into a DIV2K-like train folder and a held-out folder (``heldout/HR``);
2. builds the train LMDB with ``gaussiansr-prepare-div2k`` (BasicSR's lmdb utilities);
3. trains the paper's GaussianSR (``GaussianSR()``; ``gaussiansr_arch/options/demo_train.yml``, the
   run's options, says why its learning rate is 4x the paper's) briefly with BasicSR's own trainer
   (``gaussiansr-train``), validating x2, x3.5 and x4 on the held-out photos with BasicSR's PSNR/SSIM;
4. evaluates the trained model against bicubic on the held-out photos (``gaussiansr-compare``:
   table, PSNR-vs-scale plot, crop comparisons, the interactive ``report.html``);
5. upscales one held-out photo x3.7 to a PNG (``gaussiansr-upscale``);
6. prints where everything is. Exit code 1 when the model does not beat bicubic everywhere.
"""

import argparse
import os
import os.path as osp
import sys

import numpy as np
import yaml

from gaussiansr_arch.data.protocol import metric_options
from gaussiansr_arch.toolkit.comparison import default_dataset_name
from gaussiansr_arch.utils.atomic import write_text_atomic
from gaussiansr_arch.utils.image_io import write_image_atomic
from gaussiansr_arch.utils.option_files import packaged_options

TRAIN_PHOTOS = ('astronaut', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina')
VAL_PHOTOS = ('chelsea', 'coffee')
VAL_SCALES = (2.0, 3.5, 4.0)
# The demo's training options: gaussiansr_arch/options/demo_train.yml (package data), whose network_g is
# the paper's GaussianSR
DEMO_OPTIONS = 'demo_train.yml'
EXPERIMENT = packaged_options(DEMO_OPTIONS)['name']
MODEL_LABEL = 'GaussianSR'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='gaussiansr-demo',
        description='Run the embedded GaussianSR demo end to end on scikit-image photos (CPU, no download).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('--workdir', default='demo_workdir', help='folder for data, experiments and results')
    parser.add_argument('--iters', type=int, default=600, help='training iterations')
    parser.add_argument('--batch-size', type=int, default=8, help='training batch size')
    parser.add_argument('--lr-size', type=int, default=32, help='LR patch size of training samples')
    parser.add_argument('--sample-q', type=int, default=1024, help='HR query pixels per training sample')
    parser.add_argument('--workers', type=int, default=1, help='data loader workers')
    parser.add_argument('--seed', type=int, default=0, help='manual_seed of the run (weights and data order)')
    return parser


def write_photos(data_root: str) -> tuple[str, str]:
    """Write the train photos as PNGs in a DIV2K-like folder and the held-out ones in ``heldout/HR``;
    returns both folders. The held-out set is scored as a benchmark (Y, crop ceil(s)): gaussiansr-compare
    names ``<root>/heldout/HR`` 'heldout', whereas a folder named DIV2K... would get DIV2K's protocol
    (RGB, crop ceil(s) + 6)."""
    import skimage.data

    folders = {'train': osp.join(data_root, 'DIV2K_train_HR'), 'val': osp.join(data_root, 'heldout', 'HR')}
    for split, names in (('train', TRAIN_PHOTOS), ('val', VAL_PHOTOS)):
        os.makedirs(folders[split], exist_ok=True)
        for name in names:
            path = osp.join(folders[split], f'{name}.png')
            if not osp.exists(path):
                write_image_atomic(path, np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]))
    return folders['train'], folders['val']


def val_dataset(val_dir: str, scale: float) -> dict:
    """A held-out val set at one scale; LR made by MATLAB bicubic, benchmark protocol (Y, crop ceil(s))."""
    return {
        'name': f'heldout-x{scale:g}',
        'type': 'ArbitraryScalePairedDataset',
        'dataroot_gt': val_dir,
        'scale': scale,
        'io_backend': {'type': 'disk'},
        'metrics': metric_options(scale, 'benchmark'),
    }


def train_options(lmdb_path: str, val_dir: str, args: argparse.Namespace) -> dict:
    """BasicSR options of the demo run: ``gaussiansr_arch/options/demo_train.yml`` with the run's folders,
    one held-out val set per scale and what the command line sets."""
    opt = packaged_options(DEMO_OPTIONS)
    train_set = opt['datasets']['train']
    train_set.update(
        dataroot_gt=lmdb_path,
        meta_info_file=osp.join(lmdb_path, 'meta_info.txt'),
        lr_size=args.lr_size,
        sample_q=args.sample_q,
        num_worker_per_gpu=args.workers,
        batch_size_per_gpu=args.batch_size,
    )
    for s in VAL_SCALES:
        opt['datasets'][f'val_x{s:g}'.replace('.', 'p')] = val_dataset(val_dir, s)
    opt['manual_seed'] = args.seed
    opt['train']['scheduler']['periods'] = [args.iters]
    opt['train']['total_iter'] = args.iters
    opt['val']['val_freq'] = max(1, args.iters // 2)
    opt['logger']['print_freq'] = max(1, min(50, args.iters // 10))
    opt['logger']['save_checkpoint_freq'] = max(1, args.iters // 2)
    return opt


def compare_heldout(weights: str, option_path: str, val_dir: str, compare_dir: str) -> dict:
    """Step 4: the trained model against bicubic on the held-out photos (``gaussiansr-compare``: tables,
    plot, crops and the interactive ``report.html``); prints where the report is and returns the results."""
    from gaussiansr_arch.toolkit.compare_html import REPORT_NAME
    from gaussiansr_arch.tools import compare

    scales = [f'{s:g}' for s in VAL_SCALES]
    results = compare.run(
        [
            '--model',
            f'{MODEL_LABEL}={weights},{option_path}',
            '--model',
            'bicubic',
            '--hr',
            val_dir,
            '--scales',
            *scales,
            '-o',
            compare_dir,
            '--force',
            '--quiet',
        ]
    )
    print(f'interactive comparison report (open it in a browser): {osp.join(compare_dir, REPORT_NAME)}', flush=True)
    return results


def heldout_summary(results: dict, val_dir: str) -> tuple[list[str], bool]:
    """The demo's closing table (Markdown rows per scale) from ``compare_heldout``'s results, and whether
    the model beats bicubic in PSNR at every scale. The held-out set is looked up under the name
    gaussiansr-compare gives its folder (``heldout`` for ``heldout/HR``)."""
    dataset = default_dataset_name(val_dir)
    rows, wins = [], True
    for s in VAL_SCALES:
        ours, bic = results[(MODEL_LABEL, dataset, s)], results[('Bicubic', dataset, s)]
        p_ours, p_bic = float(np.mean(ours.psnr)), float(np.mean(bic.psnr))
        s_ours, s_bic = float(np.mean(ours.ssim)), float(np.mean(bic.ssim))
        wins &= p_ours > p_bic
        rows.append(f'| x{s:g} | {p_bic:.2f} / {s_bic:.4f} | {p_ours:.2f} / {s_ours:.4f} | {p_ours - p_bic:+.2f} |')
    return rows, wins


def run_demo(args: argparse.Namespace) -> int:
    """Run every step; returns the exit code (0 when the model beats bicubic at every scale)."""
    from gaussiansr_arch import train
    from gaussiansr_arch.tools import prepare_div2k, upscale

    workdir = osp.abspath(args.workdir)
    data_root = osp.join(workdir, 'data')
    os.makedirs(data_root, exist_ok=True)
    print(f'[1/5] writing scikit-image photos to {data_root}', flush=True)
    train_dir, val_dir = write_photos(data_root)

    print('[2/5] building the train LMDB', flush=True)
    lmdb_path = osp.join(data_root, 'DIV2K_train_HR.lmdb')
    prepare_div2k.main(['--root', data_root, '--parts', 'train', '--no-subimages', '--workers', '2'])

    print(f"[3/5] training with BasicSR's trainer for {args.iters} iterations (log below)", flush=True)
    option_path = osp.join(workdir, f'train_{EXPERIMENT}.yml')
    write_text_atomic(option_path, yaml.safe_dump(train_options(lmdb_path, val_dir, args), sort_keys=False))
    train.main(['-opt', option_path, '--root', workdir, '--auto_resume'])
    exp_dir = osp.join(workdir, 'experiments', EXPERIMENT)
    weights = osp.join(exp_dir, 'models', 'net_g_latest.pth')

    print(f'[4/5] held-out photos: {MODEL_LABEL} vs bicubic (BasicSR calculate_psnr/ssim, Y, crop ceil(s))', flush=True)
    compare_dir = osp.join(workdir, 'results', 'compare')
    results = compare_heldout(weights, option_path, val_dir, compare_dir)

    print('[5/5] upscaling chelsea x3.7', flush=True)
    upscale_dir = osp.join(workdir, 'results', 'upscaled')
    upscale.main(
        [
            osp.join(val_dir, 'chelsea.png'),
            '--weights',
            weights,
            '--opt',
            option_path,
            '--scale',
            '3.7',
            '-o',
            upscale_dir,
            '--force',
            '--quiet',
        ]
    )

    rows, wins = heldout_summary(results, val_dir)
    print(f'\n| scale | bicubic PSNR / SSIM | {MODEL_LABEL} PSNR / SSIM | gain (dB) |\n|---|---|---|---|')
    print('\n'.join(rows))
    print(f'\ntraining log and checkpoints: {exp_dir}')
    print(f'comparison table, PSNR-vs-scale plot, crops: {compare_dir}')
    print(f'interactive comparison report: {osp.join(compare_dir, "report.html")}')
    print(f'upscaled photo: {upscale_dir}')
    print(f'{MODEL_LABEL} {"beats" if wins else "does NOT beat"} bicubic at every scale.')
    return 0 if wins else 1


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.iters < 1:
        raise SystemExit(f'gaussiansr-demo: error: --iters must be >= 1, got {args.iters}')
    sys.exit(run_demo(args))


if __name__ == '__main__':
    main()
