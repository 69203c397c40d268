"""One ONNX figure per arch: gaussiansr-export-onnx's own check, max |onnxruntime - PyTorch|.

    python scripts/onnx_max_diff.py [--shared ../shared]

Every exportable arch at its default size (``network_g: {type: X}``; GaussianSR with each
decoder) is exported by ``export_onnx.to_onnx`` and checked by ``export_onnx.validate``, the
check the tool runs before writing (``CHECK_CASES``: random queries on a 13x17 LR, every pixel
centre of a 41x20 output of a 24x9 LR). The figure is the larger of the two maxima. LIIF uses the
official EDSR-baseline-LIIF weights (converted) when ``<shared>/reference/liif`` has them; the
others are random (seed 0) with their last linear layer scaled so that the output's std on a
random 16x16 input is 0.25, about a photo's (fresh weights vary by ~0.03; the difference scales
with the output). Prints a Markdown table.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import gaussiansr_arch
from gaussiansr_arch.tools import export_onnx
from gaussiansr_arch.tools.convert_liif import convert_file
from gaussiansr_arch.utils.weights import build_arch

DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
OUTPUT_STD = 0.25  # about a photo's: random init alone varies by ~0.03, a trained model by O(0.1-1)
ARCHS = {
    'GaussianSR, LTE decoder (default)': {'type': 'GaussianSR'},
    'GaussianSR, MLP decoder': {'type': 'GaussianSR', 'decoder': 'mlp'},
    'LIIF': {'type': 'LIIF'},
    'MetaSR': {'type': 'MetaSR'},
    'ContinuousSR': {'type': 'ContinuousSR'},
}


def build(name: str, opt: dict, shared: Path, tmp: str):
    liif = shared / 'reference' / 'liif' / 'edsr-baseline-liif.pth'
    if opt['type'] == 'LIIF' and liif.is_file():
        convert_file(str(liif), f'{tmp}/liif.pth')
        net = gaussiansr_arch.load_model(f'{tmp}/liif.pth')
        return net, 'official weights'
    torch.manual_seed(0)
    net = build_arch(dict(opt), 'test').eval()
    head = getattr(net, 'colour_mlp', net)  # ContinuousSR: its colours, not the offsets, make the output
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    lq, coord, cell = export_onnx.example_inputs((16, 16), 500, seed=7)
    with torch.no_grad():
        factor = OUTPUT_STD / float(net(lq, coord, cell).std())  # the output is affine in the last layer
        linears[-1].weight.mul_(factor)
        linears[-1].bias.mul_(factor)
        std = float(net(lq, coord, cell).std())
    return net, f'random, last linear x{factor:.3g} (output std {std:.2f})'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', type=Path, default=DEFAULT_SHARED)
    parser.add_argument('--archs', nargs='+', choices=list(ARCHS), default=list(ARCHS), metavar='NAME')
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.archs:
            opt = ARCHS[name]
            net, weights = build(name, opt, args.shared, tmp)
            net.eval()
            params = sum(p.numel() for p in net.parameters())
            start = time.perf_counter()
            model = export_onnx.to_onnx(net, dict(opt))
            checks = export_onnx.validate(model, net, threads=1)
            seconds = time.perf_counter() - start
            worst = max(c['max_diff'] for c in checks)
            each = ', '.join(f'{c["kind"]} {c["max_diff"]:.1e}' for c in checks)
            rows.append(f'| {name} | {params:,} | {weights} | **{worst:.1e}** ({each}) | {seconds:.0f} |')
            print(rows[-1], flush=True)
    print('\n| model | parameters | weights | max \\|diff\\| (per check) | export + check, s |')
    print('|---|---|---|---|---|')
    print('\n'.join(rows))
    print(f'(torch {torch.__version__})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
