"""Inference speed: GaussianSR (default LTE decoder and ``decoder: mlp``) vs LIIF, side by side.

Every model upscales the same LR photo (scikit-image astronaut, MATLAB-bicubic downscaled) through
``upscale`` (encoder included, each model's cheapest exact whole-image path), with the same thread
count, one warm-up per model and case, and repetitions interleaved across the models (model A, B,
C, A, B, C, ...); medians are reported. Also printed: multiply-adds (MACs) per output pixel counted
from the layer shapes, the achieved GMAC/s next to a plain GEMM of the decoder's shape measured in
the same run, and the multi-scale ratio (``upscale_many`` of N sizes from one encoding vs N calls).

    python benchmarks/bench_inference.py --device cpu --threads 2
"""

import argparse
import sys

import torch
from _common import (
    OfficialFormLIIF,
    build_model,
    check_device,
    lr_photo,
    machine_info,
    median,
    networks,
    progress,
    timed,
)
from torch import nn

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE
from gaussiansr_arch.archs.coordinates import output_size_for_scale

DEFAULT_CASES = ('64:128', '64:256', '64:384', '128:512', '256:1024')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu; cuda times with synchronisation)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: leave torch default)')
    p.add_argument('--cases', nargs='+', default=list(DEFAULT_CASES), help='LR:HR square sizes (default: paper sizes)')
    p.add_argument(
        '--models',
        nargs='+',
        default=['gaussiansr', 'gaussiansr-mlp', 'liif'],
        choices=list(networks()),
        help='liif-official-form: LIIF with the first layer per query, as the official code',
    )
    p.add_argument('--runs', type=int, default=5, help='timed repetitions per model and case (default 5)')
    p.add_argument('--large-runs', type=int, default=3, help='repetitions for outputs larger than 512x512 (default 3)')
    p.add_argument(
        '--chunk-size', type=int, default=DEFAULT_CHUNK_SIZE, help='queries per chunk (default: the package default)'
    )
    p.add_argument('--multi-lr', type=int, default=64, help='LR side of the multi-scale test (0: skip it)')
    p.add_argument('--multi-n', type=int, default=40, help='output sizes x1.1 ... x4 of the multi-scale test')
    p.add_argument('--multi-runs', type=int, default=3, help='repetitions of the multi-scale test (default 3)')
    p.add_argument('--gemm-rows', type=int, default=65536, help='rows of the reference GEMM')
    p.add_argument('--no-pretrained', action='store_true', help='random-init LIIF even if the checkpoint exists')
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- arithmetic
def conv_macs(module: nn.Module) -> int:
    """MACs per output pixel of every Conv2d inside ``module``."""
    return sum(
        m.out_channels * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    )


def linear_macs(module: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def macs_breakdown(model: nn.Module, scale2: float) -> dict | None:
    """MACs per output pixel: encoder (per LR pixel / scale^2), field/sampling, decoder.

    Counted for GaussianSR and LIIF only (None for the other archs: their heads hold attention
    and renderer work that these layer counts would not capture).
    """
    if type(model).__name__ not in ('GaussianSR', 'LIIF', 'OfficialFormLIIF'):
        return None
    if hasattr(model, 'imnet'):  # LIIF: 4 local-ensemble MLP evaluations per query
        # Our LIIF applies the first layer's latent-code columns once per LR pixel (in encode),
        # so they count with the encoder; per query only the rest of the MLP runs, 4 times.
        code_columns = 0 if isinstance(model, OfficialFormLIIF) else model.code_dim * model.imnet[0].out_features
        enc = conv_macs(model.encoder) + code_columns
        decoder = 4 * (linear_macs(model.imnet) - code_columns)
        return {'encoder/LR px': enc, 'encoder': enc / scale2, 'field': 0, 'decoder': decoder}
    enc = conv_macs(model.encoder) + (conv_macs(model.splatting) if model.splatting is not None else 0)
    s, c = model.splat_channels, model.encoder.out_channels
    field = s * (2 * model.radius + 1) ** 2 + (c - s) * 16 + 3 * 4  # Gaussians, bicubic 4x4, bilinear skip
    dec = model.decoder
    if model.decoder_type == 'lte':
        nf = dec.coef.out_channels
        # fused coef/freq 3x3 conv + phase (2 -> nf/2) + freq . rel_coord + coef * (cos, sin) + MLP
        decoder = conv_macs(dec) + linear_macs(dec.phase) + nf + nf + linear_macs(dec.mlp)
    else:
        decoder = linear_macs(dec.mlp)
    return {'encoder/LR px': enc, 'encoder': enc / scale2, 'field': field, 'decoder': decoder}


def gemm_gmacs(device, rows: int, k: int, n: int, reps: int = 3) -> float:
    """GMAC/s of a plain [rows,k] x [k,n] float32 GEMM (+bias) on this device, median of ``reps``."""
    a = torch.randn(rows, k, device=device)
    w = torch.randn(n, k, device=device)
    b = torch.randn(n, device=device)
    torch.nn.functional.linear(a, w, b)
    t = median([timed(lambda: torch.nn.functional.linear(a, w, b), device) for _ in range(reps)])
    return rows * k * n / t / 1e9


# ----------------------------------------------------------------------------- main
def build_models(names, device, pretrained: bool):
    models, notes = {}, []
    for name in names:
        torch.manual_seed(0)
        m, note = build_model(name, pretrained)
        notes.append(f'{name}: {note}, {sum(p.numel() for p in m.parameters()):,} parameters')
        models[name] = m.to(device).eval()
    return models, notes


def main(argv=None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_info(args.device))
    print('command: python', ' '.join(sys.argv))
    models, notes = build_models(args.models, device, not args.no_pretrained)
    for n in notes:
        print(n)
    cases = [tuple(int(v) for v in c.split(':')) for c in args.cases]

    gemm = {
        '256x256': gemm_gmacs(device, args.gemm_rows, 256, 256),
        '576x512': gemm_gmacs(device, args.gemm_rows, 576, 512),
    }
    print(f'reference GEMM [{args.gemm_rows},k]x[k,n]: ' + ', '.join(f'{k}: {v:.1f} GMAC/s' for k, v in gemm.items()))

    rows = []
    with torch.no_grad():
        for lr_side, hr_side in cases:
            lq = lr_photo(lr_side, device)
            size = (hr_side, hr_side)
            runs = args.runs if hr_side <= 512 else args.large_runs
            times = {m: [] for m in models}
            for model in models.values():  # warm-up
                model.upscale(lq, size=size, chunk_size=args.chunk_size)
            for _ in progress(range(runs), desc=f'{lr_side}->{hr_side}', leave=False):
                for m, model in models.items():
                    times[m].append(
                        timed(
                            lambda model=model, lq=lq, size=size: model.upscale(
                                lq, size=size, chunk_size=args.chunk_size
                            ),
                            device,
                        )
                    )
            scale2 = (hr_side / lr_side) ** 2
            for m, model in models.items():
                macs = macs_breakdown(model, scale2)
                total = macs['encoder'] + macs['field'] + macs['decoder'] if macs else None
                t = median(times[m])
                rows.append(
                    {
                        'case': f'{lr_side}->{hr_side}',
                        'model': m,
                        'ms': t * 1e3,
                        'macs': macs,
                        'total': total,
                        'gmacs': total * hr_side * hr_side / t / 1e9 if macs else None,
                        'runs': runs,
                    }
                )
            case_rows = rows[-len(models) :]
            print(f'\n{lr_side}x{lr_side} -> {hr_side}x{hr_side} (median of {runs} interleaved runs, 1 warm-up)')
            print(
                f'  {"model":<15}{"ms":>10}{"LIIF/x":>8}{"MAC/px":>11}{"enc/LRpx":>10}{"enc":>9}{"field":>8}'
                f'{"decoder":>10}{"GMAC/s":>8}{"%GEMM":>7}'
            )
            ref = next((r['ms'] for r in case_rows if r['model'] == 'liif'), None)
            for r in case_rows:
                ratio = f'{ref / r["ms"]:.2f}' if ref else '-'
                mc = r['macs']
                if mc is None:
                    print(f'  {r["model"]:<15}{r["ms"]:10.1f}{ratio:>8}{"-":>11}{"-":>10}{"-":>9}{"-":>8}{"-":>10}')
                    continue
                g = gemm['576x512'] if r['model'] == 'gaussiansr' else gemm['256x256']
                print(
                    f'  {r["model"]:<15}{r["ms"]:10.1f}{ratio:>8}{r["total"]:11.0f}{mc["encoder/LR px"]:10.0f}'
                    f'{mc["encoder"]:9.0f}{mc["field"]:8.0f}{mc["decoder"]:10.0f}{r["gmacs"]:8.1f}'
                    f'{100 * r["gmacs"] / g:6.0f}%'
                )
    print(
        '\n%GEMM: achieved GMAC/s (counted MACs / time) vs the reference GEMM of the main decoder layer '
        '(576x512 for the LTE conv, 256x256 for MLPs).'
    )

    if args.multi_lr:
        multi_scale(args, models, device)
    return 0


def multi_scale(args, models, device) -> None:
    lq = lr_photo(args.multi_lr, device)
    n = args.multi_n
    scales = [1.1 + (4.0 - 1.1) * i / (n - 1) for i in range(n)] if n > 1 else [4.0]
    sizes = [output_size_for_scale(lq.shape[-2:], s) for s in scales]
    print(
        f'\nmulti-scale: {n} output sizes from one {args.multi_lr}x{args.multi_lr} LR '
        f'({sizes[0][0]}..{sizes[-1][0]} px): upscale_many (one encoding) vs {n} upscale calls '
        f'(median of {args.multi_runs} interleaved run(s))'
    )
    with torch.no_grad():
        for m, model in models.items():
            model.upscale_many(lq, sizes[:2], chunk_size=args.chunk_size)  # warm-up
            many, single = [], []
            for _ in progress(range(args.multi_runs), desc=f'multi-scale {m}', leave=False):
                many.append(
                    timed(lambda model=model: model.upscale_many(lq, sizes, chunk_size=args.chunk_size), device)
                )
                single.append(
                    timed(
                        lambda model=model: [model.upscale(lq, size=s, chunk_size=args.chunk_size) for s in sizes],
                        device,
                    )
                )
            t_many, t_single = median(many), median(single)
            print(
                f'  {m:<15} upscale_many {t_many * 1e3:9.1f} ms   {n} x upscale {t_single * 1e3:9.1f} ms   '
                f'ratio {t_single / t_many:.2f}x'
            )


if __name__ == '__main__':
    sys.exit(main())
