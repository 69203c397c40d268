"""One-shot device check: the device-wide tests, then one Markdown table of speed and memory.

    bash benchmarks/gpu_check.sh                       # CUDA: under 8 minutes on one GPU
    bash benchmarks/gpu_check.sh --device cpu --quick  # the same on the CPU, under 5 minutes

1. ``pytest tests/test_device.py tests/test_contract.py --device D`` (every method's tests on the device);
2. inference through ``upscale`` (encoder included) at the paper's sizes (64x64 -> 128, 256,
   384), 128 -> 512 and 510 -> 2040, for GaussianSR, LIIF, LIIF in its official formulation,
   GSASR and ContinuousSR (``--models``), in fp32 and bf16 (autocast): mean of ``--runs`` runs
   after a warm-up, synchronised, and ``torch.cuda.max_memory_allocated`` on CUDA;
3. training seconds/iteration through BasicSR's trainer (batch 16, 48x48, 2304 queries) for
   the same models in fp32 and bf16 (``train.amp``), with peak memory (bench_train.py).

``--quick`` (for CPUs): 2 runs, 255 -> 1020 instead of 510 -> 2040, 3 training iterations, and
GaussianSR and LIIF only (GSASR's head alone is ~30x GaussianSR's work per training step).
Writes the table to ``--out`` (Markdown) and prints it.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import HERE, build_model, check_device, lr_photo, machine_info, networks, progress

from gaussiansr_arch.archs.precision import upscale_in_precision

QUICK_MODELS = ('gaussiansr', 'liif', 'liif-official-form')
PAPER_V100_MS = {128: (14.5, 12.6), 256: (43.2, 41.7), 384: (86.4, 106.7)}  # (LIIF, GaussianSR), paper Table 4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda', help='cuda (default) or cpu')
    p.add_argument('--quick', action='store_true', help='CPU-sized run (see above)')
    p.add_argument('--runs', type=int, default=None, help='timed runs per case (default 100; --quick 2)')
    p.add_argument(
        '--cases',
        nargs='+',
        default=None,
        help='LR:HR sizes (default 64:128 64:256 64:384 128:512 510:2040; --quick 255:1020 last)',
    )
    p.add_argument(
        '--models',
        nargs='+',
        default=None,
        choices=list(networks(variants=False)),
        help='default: every method (and LIIF in its official form); --quick: ' + ' '.join(QUICK_MODELS),
    )
    p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--train-iters', type=int, default=None, help='training iterations per run (default 20; --quick 3)')
    p.add_argument('--train-batch', type=int, default=16)
    p.add_argument('--train-lr-size', type=int, default=48)
    p.add_argument('--train-sample-q', type=int, default=2304)
    p.add_argument('--skip-tests', action='store_true', help='do not run tests/test_device.py')
    p.add_argument('--skip-train', action='store_true', help='do not measure training')
    p.add_argument('--out', default=str(HERE / 'results' / 'gpu_check.md'), help='Markdown output file')
    args = p.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 100)
    args.cases = args.cases or ['64:128', '64:256', '64:384', '128:512', '255:1020' if args.quick else '510:2040']
    args.train_iters = args.train_iters or (3 if args.quick else 20)
    args.models = args.models or list(QUICK_MODELS if args.quick else networks(variants=False))
    return args


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def run_device_tests(device: str) -> str:
    """The device-wide tests; their pytest summary line."""
    tests = [str(HERE.parent / 'tests' / name) for name in ('test_device.py', 'test_contract.py')]
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *tests, '--device', device]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        print(proc.stdout[-5000:], file=sys.stderr)
    return f'{"PASSED" if proc.returncode == 0 else "FAILED"}: {summary}'


def build(name: str, device) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name)[0].to(device).eval()


def time_upscale(model, lq, size, precision, device, runs: int) -> tuple[float, float | None]:
    """Mean milliseconds over ``runs`` after one warm-up, and peak CUDA MB (None on the CPU)."""

    def once():
        upscale_in_precision(model, lq, precision, size=size)

    once()
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(runs):
        once()
    sync(device)
    ms = (time.perf_counter() - start) / runs * 1e3
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None
    return ms, peak


def inference_table(args, device) -> list[str]:
    models = {m: build(m, device) for m in args.models}
    cases = [tuple(int(v) for v in c.split(':')) for c in args.cases]
    head = ['LR -> output'] + [f'{m} {p}' for m in args.models for p in args.precisions]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for lr_side, hr_side in progress(cases, desc='inference'):
        lq = lr_photo(lr_side, device)
        runs = args.runs if hr_side <= 512 else max(1, min(args.runs, 5))
        cells = []
        for m in args.models:
            for p in args.precisions:
                ms, peak = time_upscale(models[m], lq, (hr_side, hr_side), p, device, runs)
                cells.append(f'{ms:.1f} ms' + (f', {peak:.0f} MB' if peak is not None else ''))
        lines.append(f'| {lr_side} -> {hr_side} ({runs} runs) | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(
        'Paper (V100, Table 4), LIIF / GaussianSR: '
        + ', '.join(f'64 -> {k}: {v[0]} / {v[1]} ms' for k, v in PAPER_V100_MS.items())
    )
    return lines


def training_table(args) -> list[str]:
    import bench_train

    amps = [p for p in args.precisions if p != 'fp16' or args.device.startswith('cuda')]
    bargs = bench_train.parse_args(
        [
            '--device',
            args.device,
            '--models',
            *[m for m in args.models if m != 'liif-official-form'],
            '--amp',
            *amps,
            '--iters',
            str(args.train_iters),
            '--warmup',
            str(min(2, args.train_iters - 1)),
            '--batch',
            str(args.train_batch),
            '--lr-size',
            str(args.train_lr_size),
            '--sample-q',
            str(args.train_sample_q),
        ]
    )
    with tempfile.TemporaryDirectory(prefix='gsr_gpu_check_') as tmp:
        root = Path(tmp)
        lmdb = bench_train.make_lmdb(root, int(args.train_lr_size * bargs.scale_max) + 1)
        results = bench_train.run_all(bargs, root, lmdb)
    lines = [
        f'Training through the trainer (batch {args.train_batch}, {args.train_lr_size}x{args.train_lr_size}, '
        f'{args.train_sample_q} queries; median of {args.train_iters - bargs.warmup} iterations):',
        '',
        '| model | s/iteration | peak GPU MB | peak RSS MB |',
        '|---|---|---|---|',
    ]
    for name, r in results.items():
        gpu = f'{max(r["gpu_mb"]):.0f}' if r['gpu_mb'] else '-'
        lines.append(f'| {name} | {bench_train.median(r["times"]):.3f} | {gpu} | {max(r["rss_mb"]):.0f} |')
    for amp in amps if {'gaussiansr', 'liif'} <= set(args.models) else []:
        g, lf = results[bench_train.label('gaussiansr', amp)], results[bench_train.label('liif', amp)]
        ratio = bench_train.median(g['times']) / bench_train.median(lf['times'])
        lines.append(f'\nGaussianSR / LIIF ({amp}): {ratio:.2f}')
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    out = [
        f'# Device check ({time.strftime("%Y-%m-%d")})',
        '',
        machine_info(args.device),
        '',
        'command: python ' + ' '.join(sys.argv),
        '',
    ]
    if not args.skip_tests:
        print('running tests/test_device.py ...', file=sys.stderr)
        out += [f'Device-wide tests: {run_device_tests(args.device)}', '']
    out += [
        'Inference through `upscale` (mean of the runs after a warm-up'
        + (', peak `torch.cuda.max_memory_allocated`' if device.type == 'cuda' else '')
        + '):',
        '',
    ]
    out += inference_table(args, device)
    if not args.skip_train:
        out += [''] + training_table(args)
    text = '\n'.join(out) + '\n'
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(text)
    tmp.replace(path)
    print(text)
    print(f'written: {path}', file=sys.stderr)
    return 0 if 'FAILED' not in text else 1


if __name__ == '__main__':
    sys.exit(main())
