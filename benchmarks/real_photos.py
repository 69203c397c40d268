"""The paper's model learning on real photos (issue 21): GaussianSR, Bicubic-64 and LIIF trained by
BasicSR's trainer from our paper YAMLs on Sun-Hays 80, validated on Set5 and Set14 (LIIF protocol).

Every arm is its paper YAML with the CPU budget below (``CPU_BUDGET``, the one place the overrides
live) and nothing else changed; the runs see identical batches (``sample_seed``: each sample's
draws come from its position in the stream, not from the RNG that weight initialisation consumes;
``logger.batch_digests`` records a sha256 of every batch, compared by ``report``).

    # data (outputs outside ../shared)
    ln -s $SHARED/datasets/sun_hays80 $WORK/sunhays/DIV2K_train_HR
    gaussiansr-prepare-div2k --root $WORK/sunhays --parts train
    gaussiansr-prepare-benchmark --root $SHARED/datasets/benchmark --out $WORK/benchmark --scales 2 3 4
    # options, then each arm (resumable with --auto_resume), then the report
    python benchmarks/real_photos.py options --work $WORK --shared $SHARED
    OMP_NUM_THREADS=1 gaussiansr-train -opt $WORK/options/gaussiansr.yml --root $WORK --auto_resume
    python benchmarks/real_photos.py report --work $WORK --shared $SHARED
    # a second seed (weights and data order): options/<arm>_seed1.yml, experiments real_photos_<arm>_seed1
    python benchmarks/real_photos.py options --work $WORK --shared $SHARED --seed 1 --arms gaussiansr bicubic64

``report`` writes ``$WORK/report/curves.png`` and prints the tables of docs/benchmarks.md section 8.
"""

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TRAIN_OPTIONS = HERE.parent / 'options' / 'train'

# arm -> its paper YAML (unchanged but for CPU_BUDGET)
ARMS = {
    'gaussiansr': 'train_GaussianSR_EDSR-baseline_DIV2K.yml',
    'bicubic64': 'train_GaussianSR_EDSR-baseline_DIV2K_Bicubic-64.yml',
    'liif': 'train_LIIF_EDSR-baseline_DIV2K.yml',
}
ARM_LABELS = {
    'gaussiansr': 'GaussianSR (paper)',
    'bicubic64': 'Bicubic-64',
    'liif': 'LIIF',
    'authors': "authors' code",
}
SETS = ('Set5', 'Set14')
LAST_VALIDATIONS = 4  # T4/T5 are also averaged over each seed's last four common validations
SCALES = (2, 3, 4)

# The CPU budget: the only differences from the paper YAMLs (docs/benchmarks.md section 8).
CPU_BUDGET = {
    'total_iter': 4000,
    'batch_size_per_gpu': 8,  # paper 16
    'lr_size': 32,  # paper 48
    'sample_q': 1024,  # paper 2304
    'val_freq': 500,
    'save_checkpoint_freq': 500,
    'print_freq': 50,
    'num_worker_per_gpu': 0,  # 2 cores: loading in the training process
    # identical batches in every arm: per-sample draws seeded by stream position, one scale per
    # batch (GaussianSR's rule; LIIF's YAML draws per sample, which would make its batches differ)
    'sample_seed': 0,
    'batch_scale': True,
    # 'paper': the paper's milestones unchanged, so a run of N iterations is the first N iterations
    # of the paper's schedule (lr 1e-4 until iteration 200,000; the authors' log of its first 4,000
    # iterations is at that lr too). 'scaled': the milestones at the same fractions of total_iter,
    # which for a few thousand iterations halves the lr every few hundred (GaussianSR: 9 halvings).
    'lr_milestones': 'paper',
}


def scaled_milestones(milestones: list[int], total_iter: int, new_total: int) -> list[int]:
    """The paper's lr milestones at the same fractions of a shorter run."""
    return [max(1, round(m * new_total / total_iter)) for m in milestones]


def val_sets(shared: Path, work: Path) -> dict:
    """Set5 and Set14 at x2-x4 under the LIIF protocol (MATLAB LR files, PSNR-Y, crop = scale)."""
    sets = {}
    for name in SETS:
        for scale in SCALES:
            sets[f'val_{name}_x{scale}'] = {
                'name': f'{name}-x{scale}',
                'type': 'ArbitraryScalePairedDataset',
                'dataroot_gt': str(shared / 'datasets' / 'benchmark' / name / 'HR'),
                'dataroot_lq': str(work / 'benchmark' / name / 'LR_bicubic' / f'X{scale}'),
                'filename_tmpl': f'{{}}x{scale}',
                'scale': scale,
                'io_backend': {'type': 'disk'},
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True}},
            }
    return sets


def run_name(arm: str, seed: int = 0) -> str:
    """The run of ``arm`` at ``seed``: seed 0 is the arm itself, others ``<arm>_seed<N>``."""
    return arm if seed == 0 else f'{arm}_seed{seed}'


def arm_options(arm: str, shared: Path, work: Path, budget: dict = CPU_BUDGET, seed: int = 0) -> dict:
    """The paper YAML of ``arm`` with the CPU budget applied; ``seed`` > 0 changes both the weight
    initialisation (``manual_seed``) and the data order (``sample_seed``), and nothing else."""
    with open(TRAIN_OPTIONS / ARMS[arm], encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt = copy.deepcopy(opt)
    opt['name'] = f'real_photos_{run_name(arm, seed)}'
    if seed:
        opt['manual_seed'] = seed
    opt['num_gpu'] = 0
    train_set = opt['datasets']['train']
    train_set.pop('total_batch_size', None)  # the budget's batch_size_per_gpu replaces the paper's 16
    train_set.update(
        name='SunHays80',
        dataroot_gt=str(work / 'sunhays' / 'DIV2K_train_HR_sub.lmdb'),
        meta_info_file=str(work / 'sunhays' / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt'),
        lr_size=budget['lr_size'],
        sample_q=budget['sample_q'],
        batch_size_per_gpu=budget['batch_size_per_gpu'],
        num_worker_per_gpu=budget['num_worker_per_gpu'],
        sample_seed=budget['sample_seed'] + seed,
        batch_scale=budget['batch_scale'],
    )
    opt['datasets'] = {'train': train_set, **val_sets(shared, work)}
    if budget['lr_milestones'] == 'scaled':
        sched = opt['train']['scheduler']
        sched['milestones'] = scaled_milestones(sched['milestones'], opt['train']['total_iter'], budget['total_iter'])
    opt['train']['total_iter'] = budget['total_iter']
    opt['val']['val_freq'] = budget['val_freq']
    opt['logger'].update(
        print_freq=budget['print_freq'],
        save_checkpoint_freq=budget['save_checkpoint_freq'],
        use_tb_logger=False,
        batch_digests=True,
    )
    opt['dist_params']['backend'] = 'gloo'
    return opt


def write_options(shared: Path, work: Path, seed: int = 0, arms=tuple(ARMS)) -> list[Path]:
    out = work / 'options'
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for arm in arms:
        path = out / f'{run_name(arm, seed)}.yml'
        header = (
            f'# {ARMS[arm]} with the CPU budget of benchmarks/real_photos.py (CPU_BUDGET); '
            'written by `python benchmarks/real_photos.py options`.\n'
        )
        tmp = path.with_suffix('.yml.tmp')
        opt = arm_options(arm, shared, work, seed=seed)
        tmp.write_text(header + yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
        tmp.replace(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------ report
def bicubic_psnr(shared: Path, work: Path) -> dict:
    """Bicubic PSNR-Y per (set, scale) under the same protocol, by the validator's own functions."""
    import gaussiansr_arch  # noqa: F401  (torchvision shim before basicsr)

    # isort: split
    from basicsr.metrics import calculate_psnr

    from gaussiansr_arch.toolkit.comparison import bicubic_upscale
    from gaussiansr_arch.utils.image_io import read_image

    table = {}
    for opt in val_sets(shared, work).values():
        scale = opt['scale']
        values = []
        for hr_path in sorted(Path(opt['dataroot_gt']).glob('*.png')):
            hr = read_image(str(hr_path))
            lr = read_image(str(Path(opt['dataroot_lq']) / f'{hr_path.stem}x{scale}.png'))
            h, w = lr.shape[0] * scale, lr.shape[1] * scale
            sr = bicubic_upscale(lr, (h, w))
            # BasicSR's metric reads BGR images (its validator passes tensor2img's BGR output)
            values.append(calculate_psnr(sr[..., ::-1], hr[:h, :w, ::-1], crop_border=scale, test_y_channel=True))
        table[opt['name']] = sum(values) / len(values)
    return table


def seeded_runs(work: Path) -> list[tuple[str, int]]:
    """(arm, seed) of every run under ``work/experiments``: the main arms (seed 0), then other seeds."""
    runs = [(arm, 0) for arm in ARMS]
    for arm in ARMS:
        for folder in sorted((work / 'experiments').glob(f'real_photos_{arm}_seed*')):
            seed = folder.name.rsplit('_seed', 1)[1]
            if seed.isdigit():
                runs.append((arm, int(seed)))
    return runs


def run_label(run: str) -> str:
    arm, _, seed = run.partition('_seed')
    return ARM_LABELS[arm] + (f' (seed {seed})' if seed else '')


def arm_curves(work: Path) -> dict:
    """{run: {dataset: {iter: psnr}}} from the BasicSR logs and the authors' arm's ``curves.json``
    (run: the arm, or ``<arm>_seed<N>``)."""
    from gaussiansr_arch.toolkit.training_log import parse_logs

    curves = {}
    for arm, seed in seeded_runs(work):
        run = run_name(arm, seed)
        logs = sorted((work / 'experiments' / f'real_photos_{run}').glob('train_*.log'))
        if logs:
            curves[run] = {ds: pts for (ds, metric), pts in parse_logs(map(str, logs)).items() if metric == 'psnr'}
    authors = work / 'experiments' / 'real_photos_authors' / 'curves.json'
    if authors.exists():
        saved = json.loads(authors.read_text(encoding='utf-8'))
        curves['authors'] = {ds: {int(i): v for i, v in pts.items()} for ds, pts in saved['curves'].items()}
    return curves


def train_losses(work: Path) -> dict:
    """{arm: {iter: L1 of that iteration's batch, in [0, 1] units}} (BasicSR logs every print_freq;
    the authors' arm prints its loss on (x - 0.5) / 0.5 values, i.e. twice the [0, 1] L1)."""
    import re

    losses = {}
    for arm in ARMS:
        for log in sorted((work / 'experiments' / f'real_photos_{arm}').glob('train_*.log')):
            for line in log.read_text(encoding='utf-8', errors='replace').splitlines():
                found = re.search(r'iter:\s*([\d,]+),.*l_pix: ([-+0-9.eE]+)', line)
                if found:
                    losses.setdefault(arm, {})[int(found.group(1).replace(',', ''))] = float(found.group(2))
    authors = work / 'authors.out'
    if authors.exists():
        for line in authors.read_text(encoding='utf-8', errors='replace').splitlines():
            found = re.match(r'iter (\d+) loss ([-+0-9.eE]+)', line)
            if found:
                losses.setdefault('authors', {})[int(found.group(1))] = float(found.group(2)) / 2
    return losses


def batch_digests(work: Path) -> dict:
    out = {}
    for run in (*(run_name(a, s) for a, s in seeded_runs(work)), 'authors'):
        path = work / 'experiments' / f'real_photos_{run}' / 'batch_digests.txt'
        if path.exists():
            lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
            out[run] = {int(i): d for i, d in lines}  # a resumed run rewrites its lost iterations
    return out


def report(shared: Path, work: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    bicubic = bicubic_psnr(shared, work)
    curves = arm_curves(work)
    digests = batch_digests(work)
    for run, dig in digests.items():
        seed = run.partition('_seed')[2]
        ref_run = 'gaussiansr' + (f'_seed{seed}' if seed else '')  # the same seed's GaussianSR
        if run == ref_run or ref_run not in digests:
            continue
        ref = digests[ref_run]
        common = sorted(set(ref) & set(dig))
        same = sum(ref[i] == dig[i] for i in common)
        print(f'batches {run} vs {ref_run}: {same}/{len(common)} identical (iterations 1..{max(common, default=0)})')
    datasets = [f'{s}-x{k}' for s in SETS for k in SCALES]
    fig, axes = plt.subplots(len(SETS), len(SCALES), figsize=(4.2 * len(SCALES), 3.4 * len(SETS)), squeeze=False)
    colours = {arm: f'C{i}' for i, arm in enumerate(ARM_LABELS)}
    for ax, ds in zip(axes.flat, datasets, strict=True):
        for run, per_ds in curves.items():
            pts = per_ds.get(ds, {})
            if pts:
                its = sorted(pts)
                arm, _, seed = run.partition('_seed')
                style = dict(ls='--', marker='x') if seed else dict(ls='-', marker='o')
                ax.plot(its, [pts[i] for i in its], ms=3, color=colours[arm], label=run_label(run), **style)
        ax.axhline(bicubic[ds], color='k', ls='--', lw=1, label='bicubic')
        ax.set_title(f'{ds} (PSNR-Y, crop = scale)')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        lo = min([bicubic[ds] - 3] + [min(p.get(ds, {0: 99}).values()) for p in curves.values()])
        ax.set_ylim(max(lo, bicubic[ds] - 6), None)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out = work / 'report'
    out.mkdir(exist_ok=True)
    fig.savefig(out / 'curves.png', dpi=110)
    print(f'wrote {out / "curves.png"}')

    losses = train_losses(work)
    if losses:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for arm, pts in losses.items():
            its = [i for i in sorted(pts) if i % 50 == 0]  # the iterations every arm logs
            ax.plot(its, [pts[i] for i in its], marker='.', lw=1, label=ARM_LABELS[arm])
        ax.set_yscale('log')
        ax.set_xlabel('iteration (identical batches in every arm)')
        ax.set_ylabel('training L1 of the batch ([0, 1] units)')
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / 'train_loss.png', dpi=110)
        print(f'wrote {out / "train_loss.png"}')

    print('\n| dataset | bicubic | ' + ' | '.join(run_label(a) for a in curves) + ' |')
    print('|---|---|' + '---|' * len(curves))
    for ds in datasets:
        cells = []
        for arm in curves:
            pts = curves[arm].get(ds, {})
            if not pts:
                cells.append('-')
                continue
            last = max(pts)
            passed = next((i for i in sorted(pts) if pts[i] > bicubic[ds]), None)
            crossing = f'above bicubic from {passed}' if passed else f'below bicubic up to {last}'
            cells.append(f'{pts[last]:.2f} @{last} ({crossing})')
        print(f'| {ds} | {bicubic[ds]:.2f} | ' + ' | '.join(cells) + ' |')
    seeds = sorted({seed for _, seed in seeded_runs(work)})
    for label, arm in (('T5 (GaussianSR - Bicubic-64)', 'bicubic64'), ('T4 (GaussianSR - LIIF)', 'liif')):
        for seed in seeds:
            ours, other = run_name('gaussiansr', seed), run_name(arm, seed)
            if other not in curves or ours not in curves:
                continue
            common = set.intersection(*(set(curves[a].get(ds, {})) for a in (ours, other) for ds in datasets))
            for t in sorted(common):
                diffs = [curves[ours][ds][t] - curves[other][ds][t] for ds in datasets]
                figures = ' / '.join(f'{d:+.2f}' for d in diffs)
                print(f'{label}, seed {seed}, at iteration {t}: {figures}  ({", ".join(datasets)})')
            last = sorted(common)[-LAST_VALIDATIONS:]
            if len(last) == LAST_VALIDATIONS:  # one seed's checkpoint-to-checkpoint swing, averaged down
                means = [sum(curves[ours][ds][t] - curves[other][ds][t] for t in last) / len(last) for ds in datasets]
                figures = ' / '.join(f'{d:+.2f}' for d in means)
                print(f'{label}, seed {seed}, mean over iterations {", ".join(map(str, last))}: {figures}')
    if 'authors' in curves and 'gaussiansr' in curves:
        common = set.intersection(*(set(curves[a].get(ds, {})) for a in ('authors', 'gaussiansr') for ds in datasets))
        if common:
            t = max(common)
            diffs = [curves['gaussiansr'][ds][t] - curves['authors'][ds][t] for ds in datasets]
            print(f"ours - authors' code at iteration {t}: " + ' / '.join(f'{d:+.2f}' for d in diffs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('options', 'report'))
    parser.add_argument('--work', type=Path, required=True, help='folder for data, options, runs and the report')
    parser.add_argument('--shared', type=Path, default=HERE.parents[1] / 'shared', help='the ../shared folder')
    parser.add_argument('--seed', type=int, default=0, help='options: the seed of the runs (0: the main arms)')
    parser.add_argument('--arms', nargs='+', choices=tuple(ARMS), default=tuple(ARMS), help='options: which arms')
    args = parser.parse_args(argv)
    work, shared = args.work.resolve(), args.shared.resolve()
    if not (shared / 'datasets' / 'benchmark' / 'Set5' / 'HR').is_dir():
        print(f'real_photos: no Set5 under {shared}/datasets/benchmark', file=sys.stderr)
        return 2
    if args.command == 'options':
        for path in write_options(shared, work, args.seed, args.arms):
            print(path)
    else:
        report(shared, work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
