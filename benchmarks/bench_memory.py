"""Peak resident memory of upscaling a 510x510 photo: GaussianSR (default chunking) vs LIIF, per output size.

Each case runs in a fresh subprocess (``/usr/bin/time -v`` when present, else the child's own
``ru_maxrss``), so the figure is the whole process: Python, torch, weights, encoder, rendering.
A baseline case (imports + model + input, no upscale) is measured too.

    python benchmarks/bench_memory.py --lr 510 --sizes 1020 2040 4080
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGET_MB = 1536


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu or cuda (cuda also reports torch.cuda.max_memory_allocated)')
    p.add_argument('--threads', type=int, default=0, help='torch threads in the children (0: torch default)')
    p.add_argument('--lr', type=int, default=510, help='LR side (default 510)')
    p.add_argument('--sizes', type=int, nargs='+', default=[1020, 2040, 4080], help='output sides')
    from _common import networks

    p.add_argument('--models', nargs='+', default=['gaussiansr', 'liif'], choices=list(networks()))
    p.add_argument('--chunk-size', type=int, default=0, help='queries per chunk (0: package default)')
    p.add_argument('--child', nargs=2, metavar=('MODEL', 'SIZE'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args) -> None:
    """Runs in the subprocess: build, upscale once, print the peaks."""
    import resource

    sys.path.insert(0, str(HERE))
    import torch
    from _common import build_model, check_device, lr_photo

    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    name, size = args.child[0], int(args.child[1])
    model = build_model(name)[0]
    model = model.to(device).eval()
    lq = lr_photo(args.lr, device)
    t0 = time.perf_counter()
    if size:
        kwargs = {'chunk_size': args.chunk_size} if args.chunk_size else {}
        with torch.no_grad():
            out = model.upscale(lq, size=(size, size), **kwargs)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        assert out.shape[-1] == size
    print(f'SECONDS {time.perf_counter() - t0:.2f}')
    print(f'RU_MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')
    if device.type == 'cuda':
        print(f'CUDA_MAX_ALLOC_MB {torch.cuda.max_memory_allocated() / 2**20:.1f}')


def measure(args, name: str, size: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        '--device',
        args.device,
        '--threads',
        str(args.threads),
        '--lr',
        str(args.lr),
        '--chunk-size',
        str(args.chunk_size),
        '--child',
        name,
        str(size),
    ]
    use_time = shutil.which('time') or (os.path.exists('/usr/bin/time') and '/usr/bin/time')
    if use_time:
        cmd = [use_time, '-v', *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if proc.returncode != 0:
        raise SystemExit(f'case {name} {size} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}')
    text = proc.stdout + proc.stderr
    if use_time:
        rss_kb = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', text).group(1))
    else:
        rss_kb = int(re.search(r'RU_MAXRSS_KB (\d+)', text).group(1))
    res = {
        'rss_mb': rss_kb / 1024,
        'seconds': float(re.search(r'SECONDS ([\d.]+)', text).group(1)),
        'source': '/usr/bin/time -v' if use_time else 'ru_maxrss',
    }
    m = re.search(r'CUDA_MAX_ALLOC_MB ([\d.]+)', text)
    if m:
        res['cuda_mb'] = float(m.group(1))
    return res


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    sys.path.insert(0, str(HERE))
    from _common import machine_info, progress

    print(machine_info(args.device))
    print('command: python', ' '.join(sys.argv))
    cases = [(m, s) for s in [0, *args.sizes] for m in args.models]
    results = {}
    for name, size in progress(cases, desc='memory cases'):
        results[name, size] = measure(args, name, size)
    src = next(iter(results.values()))['source']
    print(
        f'\npeak resident memory of the whole process ({src}), LR {args.lr}x{args.lr}, one fresh process per case; '
        f'size 0 = baseline (imports, model, input; no upscale)'
    )
    print(f'{"output":>10}' + ''.join(f'{m + " MB":>18}{"s":>8}' for m in args.models))
    for size in [0, *args.sizes]:
        row = f'{(f"{size}^2" if size else "baseline"):>10}'
        for m in args.models:
            r = results[m, size]
            row += f'{r["rss_mb"]:18.0f}{r["seconds"]:8.1f}'
        print(row)
    if 'gaussiansr' in args.models and args.sizes:
        peak = max(results['gaussiansr', s]['rss_mb'] for s in args.sizes)
        spread = peak - min(results['gaussiansr', s]['rss_mb'] for s in args.sizes)
        verdict = 'MET' if peak <= BUDGET_MB else 'MISSED'
        print(
            f'GaussianSR peak {peak:.0f} MB (budget {BUDGET_MB} MB: {verdict}); spread over output sizes '
            f'{spread:.0f} MB (the output image itself is 3 x H x W float32 = '
            f'{3 * 4 * max(args.sizes) ** 2 / 2**20:.0f} MB at {max(args.sizes)}^2)'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
