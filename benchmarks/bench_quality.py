"""What the Gaussian field, the image skip and the arch are worth at CPU scale, over several seeds.

Every model of one run sees exactly the same batches (made once per iteration from the seed
and fed to all models in lockstep), starts from the same seed and uses the same optimiser and
budget, so a comparison between two arms changes one thing. Batches depend only on (seed,
iteration): runs split across processes still see identical data.

Arms (``--models``; append ``+skip`` for ``image_skip: bilinear``, added by us, not the paper's):

- ``gaussian8``:  GaussianSR as in the paper (8 splatted channels, LTE decoder, no skip)
- ``bicubic64``:  the paper's Table 5 "Bicubic-64" ablation (``splat_channels: 0``), else identical
- ``liif``:       LIIF (EDSR-baseline)
- ``gaussian8-mlp``: GaussianSR with the ``mlp`` decoder
- ``gsasr``, ``continuoussr``: GSASR and ContinuousSR at their papers' EDSR-baseline settings (no skip)

The comparisons of issue 11: T5 = gaussian8 vs bicubic64, T4 = gaussian8 vs liif, both with and
without the skip; skip = gaussian8 vs gaussian8+skip. ``--encoder-init liif`` starts every
model's EDSR-baseline encoder from the official DIV2K-trained LIIF checkpoint (decoders from
scratch); ``scratch`` (default) initialises everything randomly.

Training photos: the natural colour photos shipped with scikit-image (``QUALITY_TRAIN_PHOTOS``);
held out: chelsea, coffee and matplotlib's grace_hopper sample. Validation: BasicSR's
``calculate_psnr`` (Y channel, crop ceil(scale)) at x2, x3, x4, x2.4, x6 next to MATLAB bicubic.

    python benchmarks/bench_quality.py --models gaussian8+skip bicubic64+skip liif+skip \\
        --seeds 0 1 2 --iters 1500 --out benchmarks/results/quality_skip

Writes ``<out>/quality.json`` (updated after every evaluation), ``<out>/psnr_vs_iter.png`` and
prints per-seed tables and the mean +- std over seeds of every arm and of each paired difference.
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
    LIIF_CHECKPOINT,
    QUALITY_HELD_OUT_PHOTOS,
    QUALITY_TRAIN_PHOTOS,
    RESULTS,
    check_device,
    machine_info,
    photo,
    progress,
)
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.data.arbitrary_scale_dataset import hr_crop_and_lr_size, make_lr
from gaussiansr_arch.utils.image_io import imresize_to
from gaussiansr_arch.utils.methods import get_method, method_networks

# The GaussianSR arms keep their names of the results files; every other arm is its benchmark name.
ARM_NAMES = {'gaussiansr': 'gaussian8', 'gaussiansr-bicubic64': 'bicubic64', 'gaussiansr-mlp': 'gaussian8-mlp'}


def base_arms() -> dict[str, dict]:
    """{arm: network_g}: every benchmarked method descriptor and its variants, at the defaults."""
    return {ARM_NAMES.get(key, key): dict(net) for key, net in method_networks(benchmarked_only=True).items()}


def has_skip(arm: str) -> bool:
    """Whether an arm's method has the image-skip option (added by us; their papers' models have none)."""
    return get_method(base_arms()[arm]['type']).image_skip


SKIP_SUFFIX = '+skip'
# Paired differences printed when both arms ran: (a, b) -> a - b.
PAIRS = [(f'gaussian8{s}', f'{other}{s}') for s in ('', SKIP_SUFFIX) for other in ('bicubic64', 'liif')]
PAIRS += [('gaussian8+skip', 'gaussian8'), ('bicubic64+skip', 'bicubic64'), ('liif+skip', 'liif')]


def arm_choice(name: str) -> str:
    arms = base_arms()
    if name.removesuffix(SKIP_SUFFIX) not in arms:
        raise argparse.ArgumentTypeError(f'unknown model {name!r}: one of {sorted(arms)}, optionally +skip')
    if name.endswith(SKIP_SUFFIX) and not has_skip(name.removesuffix(SKIP_SUFFIX)):
        raise argparse.ArgumentTypeError(f'{name!r}: {name.removesuffix(SKIP_SUFFIX)} has no image-skip option')
    return name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: leave torch default)')
    p.add_argument(
        '--models',
        nargs='+',
        type=arm_choice,
        default=['gaussian8', 'bicubic64', 'liif'],
        help='arms trained in lockstep (default: gaussian8 bicubic64 liif)',
    )
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds (default: 0 1 2)')
    p.add_argument(
        '--encoder-init',
        choices=['scratch', 'liif'],
        default='scratch',
        help="'liif': every encoder from the official LIIF checkpoint (default: scratch)",
    )
    p.add_argument('--iters', type=int, default=1000, help='training iterations per model and seed (default 1000)')
    p.add_argument('--batch', type=int, default=8, help='batch size (default 8)')
    p.add_argument('--lr-size', type=int, default=32, help='LR patch size (default 32)')
    p.add_argument('--sample-q', type=int, default=1024, help='HR queries per sample (default 1024)')
    p.add_argument('--scale-max', type=float, default=4.0, help='scales drawn from U(1, scale-max) (default 4)')
    p.add_argument('--lr', type=float, default=1e-4, help='Adam learning rate (default 1e-4, as LIIF)')
    p.add_argument('--eval-every', type=int, default=250, help='validate every N iterations (and at 0 and the end)')
    p.add_argument('--eval-scales', type=float, nargs='+', default=[2.0, 3.0, 4.0, 2.4, 6.0])
    p.add_argument(
        '--eval-crop',
        type=int,
        default=240,
        help='centre-crop held-out HR photos to at most this side (0: whole photo; default 240)',
    )
    p.add_argument('--out', default=str(RESULTS / 'quality'), help='output folder')
    p.add_argument('--no-plot', action='store_true')
    return p.parse_args(argv)


def build(name: str, seed: int, encoder_init: str, device: torch.device) -> torch.nn.Module:
    """An arm with seed-determined initial weights (arms differing only by the skip start equal)."""
    torch.manual_seed(seed)
    skip = 'bilinear' if name.endswith(SKIP_SUFFIX) else 'none'
    base = name.removesuffix(SKIP_SUFFIX)
    options = base_arms()[base]
    if has_skip(base):
        options['image_skip'] = skip
    model = ARCH_REGISTRY.get(options.pop('type'))(**options)
    if encoder_init == 'liif':
        model.encoder.load_state_dict(liif_encoder_weights(), strict=True)
    return model.to(device)


def liif_encoder_weights() -> dict:
    """The EDSR-baseline encoder of the official LIIF checkpoint, as our ``encoder`` state dict."""
    if not LIIF_CHECKPOINT.is_file():
        raise SystemExit(f'--encoder-init liif: checkpoint not found at {LIIF_CHECKPOINT} (set GAUSSIANSR_LIIF_CKPT)')
    from gaussiansr_arch.tools.convert_liif import convert_checkpoint, load_checkpoint

    params = convert_checkpoint(load_checkpoint(str(LIIF_CHECKPOINT)), encoder_only=True)['params']
    return {k.removeprefix('encoder.'): v for k, v in params.items()}


def random_sample(img: np.ndarray, lr_size: int, scale_max: float, sample_q: int, gen: torch.Generator) -> dict:
    """One LIIF-style training sample (as ArbitraryScaleImageDataset, with an explicit generator)."""
    scale = 1 + (scale_max - 1) * torch.rand((), generator=gen).item()
    crop = max(1, round(lr_size * scale))
    h, w = img.shape[:2]
    top = int(torch.randint(0, h - crop + 1, (), generator=gen))
    left = int(torch.randint(0, w - crop + 1, (), generator=gen))
    hr = np.ascontiguousarray(img[top : top + crop, left : left + crop])
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
    return {
        'lq': torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
        'gt': gt[idx],
        'coord': coord[idx],
        'cell': make_cell((crop, crop), len(idx)),
    }


def make_batch(photos, seed: int, it: int, args) -> dict:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + it)
    picks = torch.randint(0, len(photos), (args.batch,), generator=gen).tolist()
    samples = [random_sample(photos[i], args.lr_size, args.scale_max, args.sample_q, gen) for i in picks]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float64)


def make_eval_set(scales, crop: int) -> list[dict]:
    cases = []
    for name in QUALITY_HELD_OUT_PHOTOS:
        img = photo(name)
        if crop:
            h, w = img.shape[:2]
            ch, cw = min(h, crop), min(w, crop)
            img = img[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
        for s in scales:
            (hh, hw), lr_size = hr_crop_and_lr_size(img.shape[:2], s)
            hr = img[:hh, :hw]
            lr = make_lr(hr, lr_size)
            cases.append(
                {
                    'photo': name,
                    'scale': s,
                    'hr': to_uint8(hr),
                    'lr': lr,
                    'bicubic': to_uint8(np.clip(imresize_to(lr, (hh, hw)), 0, 1)),
                }
            )
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
        per_scale.setdefault(f'{case["scale"]:g}', []).append(psnr(to_uint8(sr), case['hr'], case['scale']))
    model.train()
    return {s: float(np.mean(v)) for s, v in per_scale.items()}


def final_psnr(result: dict, arm: str) -> dict:
    """{seed: {scale: PSNR}} at the last evaluation of every finished seed."""
    return {
        seed: curves[arm][-1]['psnr']
        for seed, curves in result['curves'].items()
        if curves[arm] and curves[arm][-1]['iter'] == result['args']['iters']
    }


def summary(result: dict) -> dict:
    """Mean, std and per-seed values of every arm and paired difference at the last evaluation."""
    scales = list(result['bicubic'])
    rows = {}
    named = {arm: final_psnr(result, arm) for arm in result['args']['models']}
    for arm, per_seed in named.items():
        if per_seed:
            rows[arm] = {s: [per_seed[seed][s] for seed in per_seed] for s in scales}
    for a, b in PAIRS:
        if a in named and b in named:
            seeds = [seed for seed in named[a] if seed in named[b]]
            if seeds:
                rows[f'{a} - {b}'] = {s: [named[a][seed][s] - named[b][seed][s] for seed in seeds] for s in scales}
    return {
        name: {
            s: {'mean': float(np.mean(v)), 'std': float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 'per_seed': v}
            for s, v in row.items()
        }
        for name, row in rows.items()
    }


def print_summary(result: dict, file=sys.stdout) -> None:
    scales = list(result['bicubic'])
    table = summary(result)
    if not table:
        return
    n = max(len(next(iter(row.values()))['per_seed']) for row in table.values())
    print(
        f'\nPSNR-Y (dB) at iteration {result["args"]["iters"]}, mean +- std over {n} seed(s); '
        f'held out: {", ".join(QUALITY_HELD_OUT_PHOTOS)}',
        file=file,
    )
    print(f'{"":<34}' + ''.join(f'{"x" + s:>17}' for s in scales), file=file)
    print(f'{"bicubic":<34}' + ''.join(f'{result["bicubic"][s]:17.2f}' for s in scales), file=file)
    for name, row in table.items():
        sign = '+' if ' - ' in name else ''
        cells = ''.join(f'{row[s]["mean"]:{sign}9.2f} +- {row[s]["std"]:.2f}' for s in scales)
        print(f'{name:<34}{cells}', file=file)
    print('per seed:', file=file)
    for name, row in table.items():
        print(
            f'  {name:<32}' + '  '.join(f'x{s}: ' + ' '.join(f'{v:.2f}' for v in row[s]['per_seed']) for s in scales),
            file=file,
        )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    scales = list(result['bicubic'])
    fig, axes = plt.subplots(1, len(scales), figsize=(3.6 * len(scales), 3.4), squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, s in zip(axes[0], scales):
        for k, arm in enumerate(result['args']['models']):
            curves = [c[arm] for c in result['curves'].values() if c[arm]]
            length = min(len(c) for c in curves)
            its = [p['iter'] for p in curves[0][:length]]
            values = np.array([[p['psnr'][s] for p in c[:length]] for c in curves])
            mean = values.mean(axis=0)
            ax.plot(its, mean, marker='o', markersize=3, color=colours[k % len(colours)], label=arm)
            if len(curves) > 1:
                ax.fill_between(
                    its, values.min(axis=0), values.max(axis=0), color=colours[k % len(colours)], alpha=0.15
                )
        ax.axhline(result['bicubic'][s], color='grey', linestyle='--', label='bicubic')
        ax.set_title(f'x{s}')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('held-out PSNR-Y (dB)')
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f'mean over seeds (band: min-max), encoder init {result["args"]["encoder_init"]}', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_seed(seed: int, photos, cases, result: dict, args, device, save) -> None:
    """Train every arm on the same batches of ``seed``, evaluating every ``eval_every`` iterations."""
    models = {m: build(m, seed, args.encoder_init, device) for m in args.models}
    optims = {m: torch.optim.Adam(models[m].parameters(), lr=args.lr) for m in args.models}
    curves = result['curves'][str(seed)] = {m: [] for m in args.models}
    times = result['sec_per_iter'][str(seed)] = {m: [] for m in args.models}
    losses = {m: [] for m in args.models}

    def checkpoint(it: int) -> None:
        for m, model in models.items():
            curves[m].append(
                {
                    'iter': it,
                    'psnr': evaluate(model, cases, device),
                    'l1': float(np.mean(losses[m][-50:])) if losses[m] else None,
                }
            )
        save()

    checkpoint(0)
    bar = progress(range(1, args.iters + 1), desc=f'seed {seed} ({len(models)} models)')
    for it in bar:
        batch = {k: v.to(device) for k, v in make_batch(photos, seed, it, args).items()}
        for m, model in models.items():
            t0 = time.perf_counter()
            loss = F.l1_loss(model(batch['lq'], batch['coord'], batch['cell']), batch['gt'])
            optims[m].zero_grad(set_to_none=True)
            loss.backward()
            optims[m].step()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            times[m].append(time.perf_counter() - t0)
            losses[m].append(loss.item())
        bar.set_postfix({m: f'{np.mean(v[-20:]):.4f}' for m, v in losses.items()})
        if it % args.eval_every == 0 or it == args.iters:
            checkpoint(it)
            last = ', '.join(f'{m} x2 {curves[m][-1]["psnr"]["2"]:.2f}' for m in models)
            print(f'seed {seed} iter {it}: {last} (bicubic x2 {result["bicubic"]["2"]:.2f})', flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine_info(args.device))
    print('command:', ' '.join(sys.argv))
    print(
        f'budget: {args.iters} iterations per model and seed, batch {args.batch}, LR {args.lr_size}x{args.lr_size}, '
        f'{args.sample_q} queries, scale U(1,{args.scale_max}), Adam lr {args.lr}, L1; seeds {args.seeds}; '
        f'encoder init {args.encoder_init}; identical batches for every model'
    )
    print(f'train photos: {", ".join(QUALITY_TRAIN_PHOTOS)}; held out: {", ".join(QUALITY_HELD_OUT_PHOTOS)}')
    photos = [photo(n) for n in QUALITY_TRAIN_PHOTOS]
    cases = make_eval_set(args.eval_scales, args.eval_crop)
    bicubic: dict = {}
    for case in cases:
        bicubic.setdefault(f'{case["scale"]:g}', []).append(psnr(case['bicubic'], case['hr'], case['scale']))
    result = {
        'args': vars(args),
        'machine': machine_info(args.device),
        'command': ' '.join(sys.argv),
        'bicubic': {s: float(np.mean(v)) for s, v in bicubic.items()},
        'curves': {},
        'sec_per_iter': {},
    }
    started = time.time()

    def save() -> None:
        result['wall_s'] = time.time() - started
        tmp = out / 'quality.json.tmp'
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out / 'quality.json')
        if not args.no_plot:
            plot(result, out / 'psnr_vs_iter.png')

    for seed in args.seeds:
        train_seed(seed, photos, cases, result, args, device, save)
        print_summary(result)
    medians = {
        m: float(np.median([t for seed in result['sec_per_iter'].values() for t in seed[m]])) for m in args.models
    }
    print('median s/iteration: ' + ', '.join(f'{m} {t:.3f}' for m, t in medians.items()))
    print(f'wall time {result["wall_s"] / 60:.1f} min; plot: {out / "psnr_vs_iter.png"}; data: {out / "quality.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
