"""Inference precision and compilation, side by side: fp32 vs bf16 (autocast) vs torch.compile.

For each model: the time of a whole-image ``upscale`` (encoder included) at ``--case`` in fp32,
bf16 and compiled fp32 (runs interleaved, medians, one warm-up each; compilation happens in the
warm-up and is reported apart), and the PSNR-Y change bf16 - fp32 on the held-out photos
(chelsea, coffee, grace_hopper; MATLAB-bicubic LR; BasicSR ``calculate_psnr``, crop ceil(s)).
PSNR changes only mean something for trained weights: LIIF uses the official checkpoint when it
is found; GaussianSR uses ``--gaussiansr-weights`` (e.g. the demo's model) or random weights
(timing only, marked).

    python benchmarks/bench_precision.py --threads 2 --gaussiansr-weights demo_workdir/.../net_g_latest.pth
"""

import argparse
import math
import sys
import time

import numpy as np
import torch
from _common import QUALITY_HELD_OUT_PHOTOS, check_device, gaussiansr, liif, lr_photo, machine_info, median, photo

from gaussiansr_arch.archs.precision import compile_arch, upscale_in_precision
from gaussiansr_arch.data.protocol import hr_crop_and_lr_size, make_lr, to_uint8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--case', default='128:512', help='LR:HR square sizes of the timing (default 128:512)')
    p.add_argument('--runs', type=int, default=5, help='timed runs per variant (default 5)')
    p.add_argument('--scales', type=float, nargs='+', default=[2.0, 3.0, 4.0], help='PSNR scales')
    p.add_argument('--crop', type=int, default=240, help='centre crop of the held-out photos (0: whole)')
    p.add_argument('--gaussiansr-weights', default=None, help='trained GaussianSR weights (any file we write)')
    p.add_argument(
        '--gaussiansr-opt',
        default=None,
        help="the run's YAML (its network_g), for weights that do not record it (training checkpoints)",
    )
    p.add_argument('--no-compile', action='store_true', help='skip the compiled variant')
    return p.parse_args(argv)


def build(args, device) -> dict:
    models = {}
    if args.gaussiansr_weights:
        import yaml

        from gaussiansr_arch import load_model

        network_g = None
        if args.gaussiansr_opt:
            with open(args.gaussiansr_opt, encoding='utf-8') as f:
                network_g = yaml.safe_load(f)['network_g']
        net = load_model(args.gaussiansr_weights, device, network_g=network_g).eval()
        models['gaussiansr'] = (net, f'weights {args.gaussiansr_weights}')
    else:
        torch.manual_seed(0)
        models['gaussiansr'] = (gaussiansr().to(device).eval(), 'RANDOM-INIT (timing only)')
    net, note = liif()
    models['liif'] = (net.to(device).eval(), note)
    return models


def upscale(model, lq, size, precision, device):
    return upscale_in_precision(model, lq, precision, size=size)


def timings(models: dict, args, device) -> dict:
    lr_side, hr_side = (int(v) for v in args.case.split(':'))
    lq = lr_photo(lr_side, device)
    size = (hr_side, hr_side)
    variants = {}
    for name, (model, _) in models.items():
        variants[(name, 'fp32')] = (model, 'fp32')
        variants[(name, 'bf16')] = (model, 'bf16')
    compile_s = {}
    if not args.no_compile:
        import copy

        for name, (model, _) in models.items():
            compiled = compile_arch(copy.deepcopy(model))
            start = time.perf_counter()
            upscale(compiled, lq, size, 'fp32', device)  # compiles
            compile_s[name] = time.perf_counter() - start
            variants[(name, 'compiled fp32')] = (compiled, 'fp32')
    for model, precision in variants.values():  # warm-up
        upscale(model, lq, size, precision, device)
    times = {k: [] for k in variants}
    for _ in range(args.runs):
        for key, (model, precision) in variants.items():
            start = time.perf_counter()
            upscale(model, lq, size, precision, device)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            times[key].append(time.perf_counter() - start)
    return {k: median(v) for k, v in times.items()}, compile_s


def psnr_change(models: dict, args, device) -> dict:
    from basicsr.metrics import calculate_psnr

    out = {}
    for name, (model, _) in models.items():
        for s in args.scales:
            diffs = []
            for photo_name in QUALITY_HELD_OUT_PHOTOS:
                img = photo(photo_name)
                if args.crop:
                    h, w = img.shape[:2]
                    c = min(h, w, args.crop)
                    img = img[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]
                (hh, hw), lr_size = hr_crop_and_lr_size(img.shape[:2], s)
                hr = to_uint8(img[:hh, :hw]).astype(np.float64)
                lq = torch.from_numpy(make_lr(img[:hh, :hw], lr_size).transpose(2, 0, 1).copy())[None].to(device)
                psnr = {}
                for precision in ('fp32', 'bf16'):
                    sr = upscale(model, lq, (hh, hw), precision, device)[0].permute(1, 2, 0).cpu().numpy()
                    psnr[precision] = calculate_psnr(
                        to_uint8(sr).astype(np.float64), hr, math.ceil(s), input_order='HWC', test_y_channel=True
                    )
                diffs.append((psnr['fp32'], psnr['bf16']))
            out[(name, s)] = (float(np.mean([d[0] for d in diffs])), float(np.mean([d[1] for d in diffs])))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_info(args.device))
    print('command: python', ' '.join(sys.argv))
    models = build(args, device)
    for name, (_, note) in models.items():
        print(f'{name}: {note}')
    times, compile_s = timings(models, args, device)
    print(f'\nupscale {args.case} (median of {args.runs} interleaved runs, 1 warm-up):')
    print(f'| model | fp32 ms | bf16 ms | fp32 / bf16 |{" compiled fp32 ms | eager / compiled |" if compile_s else ""}')
    for name in models:
        row = f'| {name} | {times[(name, "fp32")] * 1e3:.0f} | {times[(name, "bf16")] * 1e3:.0f} | '
        row += f'{times[(name, "fp32")] / times[(name, "bf16")]:.2f}x |'
        if compile_s:
            comp = times[(name, 'compiled fp32')]
            row += f' {comp * 1e3:.0f} (first call {compile_s[name]:.0f} s) | {times[(name, "fp32")] / comp:.2f}x |'
        print(row)
    changes = psnr_change(models, args, device)
    print(f'\nPSNR-Y, mean over {", ".join(QUALITY_HELD_OUT_PHOTOS)} (crop {args.crop}): fp32 -> bf16 (change)')
    for (name, s), (fp32, bf16) in changes.items():
        print(f'  {name} x{s:g}: {fp32:.3f} -> {bf16:.3f} ({bf16 - fp32:+.3f} dB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
