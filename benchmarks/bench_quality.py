"""Early-training quality (paper Table 4 style): GaussianSR vs LIIF trained from scratch side by side.

Both models see exactly the same batches (generated once per iteration from a seed and fed to
both in lockstep), start from the same seed, and use the same optimiser and budget. Training
photos: scikit-image astronaut, rocket, hubble_deep_field, immunohistochemistry, retina;
held out: chelsea, coffee. Validation: BasicSR's ``calculate_psnr`` (Y channel, crop
ceil(scale)) at x2, x3, x4, x2.4 next to MATLAB bicubic, every ``--eval-every`` iterations.

    python benchmarks/bench_quality.py --iters 1000 --batch 8 --out benchmarks/results/quality

Writes ``<out>/quality.json`` (updated after every evaluation) and ``<out>/psnr_vs_iter.png``.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    HELD_OUT_PHOTOS,
    RESULTS,
    TRAIN_PHOTOS,
    check_device,
    gaussiansr,
    liif,
    machine_info,
    photo,
    progress,
)

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.data.arbitrary_scale_dataset import hr_crop_and_lr_size, make_lr
from gaussiansr_arch.utils.image_io import imresize_to


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: leave torch default)')
    p.add_argument('--iters', type=int, default=1000, help='training iterations per model (default 1000)')
    p.add_argument('--batch', type=int, default=8, help='batch size (default 8)')
    p.add_argument('--lr-size', type=int, default=48, help='LR patch size (default 48)')
    p.add_argument('--sample-q', type=int, default=2304, help='HR queries per sample (default 2304)')
    p.add_argument('--scale-max', type=float, default=4.0, help='scales drawn from U(1, scale-max) (default 4)')
    p.add_argument('--lr', type=float, default=1e-4, help='Adam learning rate (default 1e-4, as LIIF)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--eval-every', type=int, default=200, help='validate every N iterations (and at 0 and the end)')
    p.add_argument('--eval-scales', type=float, nargs='+', default=[2.0, 3.0, 4.0, 2.4])
    p.add_argument('--eval-crop', type=int, default=240,
                   help='centre-crop held-out HR photos to at most this side (0: whole photo; default 240)')
    p.add_argument('--models', nargs='+', default=['gaussiansr', 'liif'],
                   choices=['gaussiansr', 'liif', 'gaussiansr-mlp'])
    p.add_argument('--out', default=str(RESULTS / 'quality'), help='output folder')
    p.add_argument('--no-plot', action='store_true')
    return p.parse_args(argv)


def build(name: str, seed: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(seed)
    if name == 'liif':
        return liif(pretrained=False)[0].to(device)
    return gaussiansr('mlp' if name == 'gaussiansr-mlp' else 'lte').to(device)


def random_sample(img: np.ndarray, lr_size: int, scale_max: float, sample_q: int, gen: torch.Generator) -> dict:
    """One LIIF-style training sample (as ArbitraryScaleImageDataset, with an explicit generator)."""
    scale = 1 + (scale_max - 1) * torch.rand((), generator=gen).item()
    crop = max(1, round(lr_size * scale))
    h, w = img.shape[:2]
    top = int(torch.randint(0, h - crop + 1, (), generator=gen))
    left = int(torch.randint(0, w - crop + 1, (), generator=gen))
    hr = np.ascontiguousarray(img[top:top + crop, left:left + crop])
    lr = make_lr(hr, (lr_size, lr_size))
    flips = torch.rand(3, generator=gen)
    if flips[0] < 0.5:
        hr, lr = hr[:, ::-1], lr[:, ::-1]
    if flips[1] < 0.5:
        hr, lr = hr[::-1], lr[::-1]
    if flips[2] < 0.5:
        hr, lr = hr.transpose(1, 0, 2), lr.transpose(1, 0, 2)
    gt = torch.from_numpy(np.ascontiguousarray(hr)).reshape(-1, 3)
    coord = make_coord((crop, crop))
    idx = torch.randperm(crop * crop, generator=gen)[:sample_q]
    return {'lq': torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))), 'gt': gt[idx],
            'coord': coord[idx], 'cell': make_cell((crop, crop), len(idx))}


def make_batch(photos, it: int, args) -> dict:
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + it)
    picks = torch.randint(0, len(photos), (args.batch,), generator=gen).tolist()
    samples = [random_sample(photos[i], args.lr_size, args.scale_max, args.sample_q, gen) for i in picks]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float64)


def make_eval_set(scales, crop: int) -> list[dict]:
    cases = []
    for name in HELD_OUT_PHOTOS:
        img = photo(name)
        if crop:
            h, w = img.shape[:2]
            ch, cw = min(h, crop), min(w, crop)
            img = img[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        for s in scales:
            (hh, hw), lr_size = hr_crop_and_lr_size(img.shape[:2], s)
            hr = img[:hh, :hw]
            lr = make_lr(hr, lr_size)
            cases.append({'photo': name, 'scale': s, 'hr': to_uint8(hr), 'lr': lr,
                          'bicubic': to_uint8(np.clip(imresize_to(lr, (hh, hw)), 0, 1))})
    return cases


def psnr(sr: np.ndarray, hr: np.ndarray, scale: float) -> float:
    from basicsr.metrics import calculate_psnr

    return float(calculate_psnr(sr, hr, crop_border=math.ceil(scale), input_order='HWC', test_y_channel=True))


@torch.no_grad()
def evaluate(model, cases, device) -> dict:
    """Mean PSNR over the held-out photos per scale."""
    model.eval()
    per_scale: dict = {}
    for case in cases:
        lq = torch.from_numpy(case['lr'].transpose(2, 0, 1).copy())[None].to(device)
        sr = model.upscale(lq, size=case['hr'].shape[:2], chunk_size=30000)
        sr = sr.clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        per_scale.setdefault(str(case['scale']), []).append(psnr(to_uint8(sr), case['hr'], case['scale']))
    model.train()
    return {s: float(np.mean(v)) for s, v in per_scale.items()}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    scales = list(result['bicubic'])
    fig, axes = plt.subplots(1, len(scales), figsize=(4 * len(scales), 3.4), squeeze=False)
    for ax, s in zip(axes[0], scales):
        for name, curve in result['curves'].items():
            its = [c['iter'] for c in curve]
            ax.plot(its, [c['psnr'][s] for c in curve], marker='o', label=name)
        ax.axhline(result['bicubic'][s], color='grey', linestyle='--', label='bicubic')
        ax.set_title(f'x{s} (held-out chelsea+coffee)')
        ax.set_xlabel('iteration')
        ax.set_ylabel('PSNR-Y (dB)')
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(result: dict, file=sys.stdout) -> None:
    scales = list(result['bicubic'])
    print('PSNR-Y (dB), mean over held-out photos, at the last evaluation:', file=file)
    print(f'{"model":<16}{"iter":>6}' + ''.join(f'{"x" + s:>9}' for s in scales), file=file)
    print(f'{"bicubic":<16}{"-":>6}' + ''.join(f'{result["bicubic"][s]:9.3f}' for s in scales), file=file)
    for name, curve in result['curves'].items():
        last = curve[-1]
        print(f'{name:<16}{last["iter"]:>6}' + ''.join(f'{last["psnr"][s]:9.3f}' for s in scales), file=file)
    if 'gaussiansr' in result['curves'] and 'liif' in result['curves']:
        g, lf = result['curves']['gaussiansr'][-1]['psnr'], result['curves']['liif'][-1]['psnr']
        print(f'{"GaussianSR-LIIF":<16}{"":>6}' + ''.join(f'{g[s] - lf[s]:+9.3f}' for s in scales), file=file)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine_info(args.device))
    print('command:', ' '.join(sys.argv))
    print(f'budget: {args.iters} iterations, batch {args.batch}, LR {args.lr_size}x{args.lr_size}, '
          f'{args.sample_q} queries, scale U(1,{args.scale_max}), Adam lr {args.lr}, L1, seed {args.seed}; '
          f'LIIF and GaussianSR from scratch (random init), identical batches')
    photos = [photo(n) for n in TRAIN_PHOTOS]
    cases = make_eval_set(args.eval_scales, args.eval_crop)
    bicubic: dict = {}
    for case in cases:
        bicubic.setdefault(str(case['scale']), []).append(psnr(case['bicubic'], case['hr'], case['scale']))
    result = {'args': vars(args), 'machine': machine_info(args.device), 'command': ' '.join(sys.argv),
              'bicubic': {s: float(np.mean(v)) for s, v in bicubic.items()},
              'curves': {m: [] for m in args.models}, 'sec_per_iter': {m: [] for m in args.models}}
    models = {m: build(m, args.seed, device) for m in args.models}
    optims = {m: torch.optim.Adam(models[m].parameters(), lr=args.lr) for m in args.models}

    def checkpoint(it: int) -> None:
        for m, model in models.items():
            result['curves'][m].append({'iter': it, 'psnr': evaluate(model, cases, device)})
        (out / 'quality.json').write_text(json.dumps(result, indent=1))
        if not args.no_plot:
            plot(result, out / 'psnr_vs_iter.png')
        print_table(result)
        sys.stdout.flush()

    checkpoint(0)
    losses = {m: [] for m in args.models}
    bar = progress(range(1, args.iters + 1), desc='train (all models)')
    for it in bar:
        batch = {k: v.to(device) for k, v in make_batch(photos, it, args).items()}
        for m, model in models.items():
            t0 = time.perf_counter()
            pred = model(batch['lq'], batch['coord'], batch['cell'])
            loss = F.l1_loss(pred, batch['gt'])
            optims[m].zero_grad(set_to_none=True)
            loss.backward()
            optims[m].step()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            result['sec_per_iter'][m].append(time.perf_counter() - t0)
            losses[m].append(loss.item())
        bar.set_postfix({m: f'{np.mean(v[-20:]):.4f}' for m, v in losses.items()})
        if it % args.eval_every == 0 or it == args.iters:
            for m in args.models:
                times = result['sec_per_iter'][m]
                print(f'iter {it}: {m} L1 (last 20) {np.mean(losses[m][-20:]):.4f}, '
                      f'median {np.median(times):.3f} s/iter')
            checkpoint(it)
    print(f'plot: {out / "psnr_vs_iter.png"}; data: {out / "quality.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
