"""Training throughput through BasicSR's trainer: GaussianSR vs LIIF, seconds per iteration.

Runs the real entry point (``gaussiansr_arch.train.main`` via ``python -m gaussiansr_arch.train``)
on a small LMDB made from scikit-image photos, LIIF's recipe (batch 16, 48x48 LR, 2304 queries,
scale U(1, 4), Adam, L1), alternating the models run by run. Per-iteration times come from
BasicSR's log (``time (data)`` is a running mean, logged every iteration, so
``t_k = k A_k - (k-1) A_{k-1}``); the first ``--warmup`` iterations are dropped and the median is
reported. Peak resident memory of each training process comes from ``/usr/bin/time -v``
(else ``ru_maxrss`` of the children).

    python benchmarks/bench_train.py --iters 8 --warmup 2 --repeats 2

``liif-official-form`` is LIIF with the first MLP layer applied per query as the official code
does (benchmarks/_common.py); ``--malloc-tuned`` runs every trainer with glibc keeping freed
memory, which removes the page faults of large per-step tensors. ``--amp fp32 bf16`` runs every
model in each precision (``train.amp``); on CUDA the peak ``torch.cuda.max_memory_allocated`` of
each trainer is reported too.
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml
from _common import TRAIN_PHOTOS, machine_info, median, networks, photo, progress

from gaussiansr_arch.data.protocol import to_uint8
from gaussiansr_arch.utils.option_files import read_options

OPTIONS = Path(__file__).resolve().parent / 'options' / 'bench_train.yml'  # the recipe; train_yaml sets the run's part

# The trainer with the benchmark-only OfficialFormLIIF registered (same entry point otherwise).
# On CUDA the trainer prints its peak allocated GPU memory at exit.
TRAIN_ENTRY = (
    'import sys, atexit, torch; sys.path.insert(0, {here!r}); import _common; '
    '_common.register_benchmark_archs(); '
    'atexit.register(lambda: torch.cuda.is_available() and print("CUDA_MAX_ALLOC_MB", '
    'torch.cuda.max_memory_allocated() / 2**20, file=sys.stderr)); '
    'from gaussiansr_arch.train import main; main(sys.argv[1:])'
)
AMPS = ('fp32', 'bf16', 'fp16')
# glibc keeps freed memory for reuse instead of unmapping every block over 32 MB, which the
# next step would page-fault again (--malloc-tuned; applies to every model alike).
TUNED_MALLOC = {
    'MALLOC_MMAP_THRESHOLD_': '4294967296',
    'MALLOC_TRIM_THRESHOLD_': '68719476736',
    'MALLOC_TOP_PAD_': '1073741824',
}
LOG_RE = re.compile(r'iter:\s*([\d,]+).*?time \(data\):\s*([\d.]+)\s*\(([\d.]+)\)')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu or cuda (num_gpu 0 or 1)')
    p.add_argument('--threads', type=int, default=0, help='OMP_NUM_THREADS of the trainer (0: inherit)')
    p.add_argument('--models', nargs='+', default=['gaussiansr', 'liif'], choices=sorted(networks()))
    p.add_argument('--iters', type=int, default=8, help='iterations per run (default 8)')
    p.add_argument('--warmup', type=int, default=2, help='first iterations not counted (default 2)')
    p.add_argument('--repeats', type=int, default=1, help='runs per model, alternated (default 1)')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lr-size', type=int, default=48)
    p.add_argument('--sample-q', type=int, default=2304)
    p.add_argument('--scale-max', type=float, default=4.0)
    p.add_argument('--workdir', default=None, help='where the LMDB and experiments go (default: a temp folder)')
    p.add_argument(
        '--amp',
        nargs='+',
        default=['fp32'],
        choices=AMPS,
        help='precisions (train.amp) each model runs in (default: fp32)',
    )
    p.add_argument(
        '--malloc-tuned',
        action='store_true',
        help='run the trainers with glibc malloc keeping freed memory (MALLOC_* variables)',
    )
    return p.parse_args(argv)


def make_lmdb(root: Path, min_side: int) -> str:
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    hr_dir = root / 'hr'
    hr_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for name in TRAIN_PHOTOS:
        img = photo(name)
        if min(img.shape[:2]) < min_side:
            continue
        cv2.imwrite(str(hr_dir / f'{name}.png'), cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR))
        names.append(f'{name}.png')
    lmdb_path = root / 'train.lmdb'
    if not lmdb_path.exists():
        make_lmdb_from_imgs(str(hr_dir), str(lmdb_path), names, [n[:-4] for n in names], n_thread=1)
    return str(lmdb_path)


def train_yaml(args, lmdb: str, model: str, name: str, amp: str = 'fp32') -> dict:
    """``benchmarks/options/bench_train.yml`` with the run's model, LMDB and command-line recipe."""
    opt = read_options(OPTIONS)
    opt.update(name=name, num_gpu=1 if args.device.startswith('cuda') else 0, network_g=networks()[model])
    opt['datasets']['train'].update(
        dataroot_gt=lmdb,
        meta_info_file=os.path.join(lmdb, 'meta_info.txt'),
        lr_size=args.lr_size,
        scale_max=args.scale_max,
        sample_q=args.sample_q,
        batch_size_per_gpu=args.batch,
    )
    opt['train'].update(total_iter=args.iters, amp=None if amp == 'fp32' else amp)
    return opt


def iteration_times(log_text: str) -> list[float]:
    """Per-iteration seconds from BasicSR's running means (one log line per iteration)."""
    avgs = {}
    for m in LOG_RE.finditer(log_text):
        avgs[int(m.group(1).replace(',', ''))] = float(m.group(2))
    times, prev = [], 0.0
    for k in sorted(avgs):
        times.append(k * avgs[k] - (k - 1) * prev)
        prev = avgs[k]
    return times


def run_once(args, root: Path, lmdb: str, model: str, idx: int, amp: str = 'fp32') -> dict:
    name = f'bench_{model}_{amp}_{idx}'
    opt_path = root / f'{name}.yml'
    opt_path.write_text(yaml.safe_dump(train_yaml(args, lmdb, model, name, amp), sort_keys=False))
    entry = TRAIN_ENTRY.format(here=str(Path(__file__).resolve().parent))
    cmd = [sys.executable, '-c', entry, '-opt', str(opt_path), '--root', str(root)]
    timer = shutil.which('time') or ('/usr/bin/time' if os.path.exists('/usr/bin/time') else None)
    if timer:
        cmd = [timer, '-v', *cmd]
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    if args.malloc_tuned:
        env.update(TUNED_MALLOC)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f'{model} training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    log = '\n'.join(p.read_text() for p in sorted((root / 'experiments' / name).glob('train_*.log')))
    times = iteration_times(log)
    if timer:
        rss_kb = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', proc.stderr).group(1))
    else:
        rss_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    shutil.rmtree(root / 'experiments' / name, ignore_errors=True)
    gpu = re.search(r'CUDA_MAX_ALLOC_MB ([\d.]+)', proc.stderr)
    return {'times': times, 'rss_mb': rss_kb / 1024, 'gpu_mb': float(gpu.group(1)) if gpu else None}


def label(model: str, amp: str) -> str:
    return model if amp == 'fp32' else f'{model} ({amp})'


def run_all(args, root: Path, lmdb: str) -> dict:
    """Every (model, precision) run ``args.repeats`` times, alternated; per-iteration times and peaks."""
    results = {label(m, a): {'times': [], 'rss_mb': [], 'gpu_mb': []} for a in args.amp for m in args.models}
    runs = [(r, m, a) for r in range(args.repeats) for a in args.amp for m in args.models]
    for r, m, a in progress(runs, desc='training runs'):
        res = run_once(args, root, lmdb, m, r, a)
        entry = results[label(m, a)]
        entry['times'] += res['times'][args.warmup :]
        entry['rss_mb'].append(res['rss_mb'])
        if res['gpu_mb'] is not None:
            entry['gpu_mb'].append(res['gpu_mb'])
    return results


def print_results(results: dict) -> None:
    print(f'\n{"model":<24}{"s/iter (median)":>16}{"min":>8}{"max":>8}{"n":>4}{"peak RSS MB":>13}{"GPU MB":>9}')
    for m, r in results.items():
        t = r['times']
        gpu = f'{max(r["gpu_mb"]):9.0f}' if r['gpu_mb'] else f'{"-":>9}'
        print(f'{m:<24}{median(t):16.3f}{min(t):8.3f}{max(t):8.3f}{len(t):4d}{max(r["rss_mb"]):13.0f}{gpu}')


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.warmup >= args.iters:
        raise SystemExit('--warmup must be smaller than --iters')
    print(machine_info(args.device))
    print('command: python', ' '.join(sys.argv))
    print(
        f'recipe: batch {args.batch}, LR {args.lr_size}x{args.lr_size}, {args.sample_q} queries, '
        f'scale U(1,{args.scale_max}), Adam 1e-4, L1; {args.iters} iterations per run, first {args.warmup} dropped'
    )
    print(
        'allocator: '
        + (' '.join(f'{k}={v}' for k, v in TUNED_MALLOC.items()) if args.malloc_tuned else 'glibc defaults')
    )
    tmp = None
    if args.workdir:
        root = Path(args.workdir)
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix='gsr_bench_train_')
        root = Path(tmp.name)
    lmdb = make_lmdb(root, int(np.ceil(args.lr_size * args.scale_max)))
    results = run_all(args, root, lmdb)
    print_results(results)
    for amp in args.amp:
        for liif in ('liif', 'liif-official-form'):
            g, lf = results.get(label('gaussiansr', amp)), results.get(label(liif, amp))
            if g and lf:
                ratio = median(g['times']) / median(lf['times'])
                verdict = 'MET' if ratio <= 0.8 else 'MISSED'
                print(f'GaussianSR / {label(liif, amp)} time per iteration: {ratio:.2f} (floor <= 0.80: {verdict})')
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
