"""Write the golden fixtures of tests/test_hat.py: the official HAT body's features on a small random model.

The official code is https://github.com/XPixelGroup/HAT at commit
1638a9a822581657811867bf670717f8371fc3e5 (Apache License 2.0, its LICENSE file). None of it is
copied here or into the package: this script imports ``hat/archs/hat_arch.py`` from a checkout given
on the command line (by file path, so the ``hat`` package's ``__init__`` and its training code are
not imported; it needs basicsr and einops), builds the official ``HAT`` with a small configuration
(``CONFIG`` below: embed_dim 12, two RHAGs of two HABs (unshifted, shifted), 2 heads, window 4, overlap 0.5,
upsampler 'pixelshuffle' for its ``conv_before_upsample``), gives every parameter random values
(seed 0; LayerNorm weights around 1, relative-position tables, biases and ``conv_scale`` 0.3
large enough that a wrong index or branch shows), and saves, as ``.safetensors`` in
``tests/fixtures/hat/``:

- ``official_state.safetensors``: the official state dict without the reconstruction head that
  ContinuousSR and GSASR drop or replace (``upsample.*``, ``conv_last.*``), ``CONFIG`` in its
  metadata;
- ``cases.safetensors``: per case ``<case>.lr`` (RGB [0,1]) and ``<case>.body`` (the official body
  features), and for case ``9x17`` also ``<case>.head`` (the official ``conv_before_upsample`` of the
  padded features, then cropped: GSASR's ``HATNOUP`` output); the case names in the metadata.

The body is the official forward's chain without the mean/img_range normalisation (which
ContinuousSR's and GSASR's HAT copies comment out) and without the upsampler:
``conv_first`` -> ``conv_after_body(forward_features(.)) + .``, on the input reflect-padded at the
bottom/right to a multiple of the window (as HAT's ``hat_model.pre_process`` and ContinuousSR's
``check_image_size``), cropped back to the input size. Cases: 12x12 with batch 2 (no padding),
10x14 and 9x17 (padded to 12x16 and 12x20). Everything runs on the CPU in float32.

    git clone https://github.com/XPixelGroup/HAT /tmp/hat && git -C /tmp/hat checkout 1638a9a
    python scripts/make_hat_fixtures.py --official-code /tmp/hat
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'hat'
SEED = 0
# Official HAT options (its constructor's names); conv_scale raised from 0.01 so the CAB branch
# weighs in the features.
CONFIG = {
    'img_size': 8,
    'in_chans': 3,
    'embed_dim': 12,
    'depths': [2, 2],
    'num_heads': [2, 2],
    'window_size': 4,
    'compress_ratio': 3,
    'squeeze_factor': 4,
    'conv_scale': 0.3,
    'overlap_ratio': 0.5,
    'mlp_ratio': 2.0,
    'upscale': 2,
    'img_range': 1.0,
    'upsampler': 'pixelshuffle',
    'resi_connection': '1conv',
    'drop_path_rate': 0.0,
}
CASES = {'12x12': (2, 12, 12), '10x14': (1, 10, 14), '9x17': (1, 9, 17)}
HEAD_CASE = '9x17'
DROPPED = ('upsample.', 'conv_last.')


def load_official(checkout: Path):
    """The official ``hat_arch`` module, imported from its file."""
    path = checkout / 'hat' / 'archs' / 'hat_arch.py'
    if not path.is_file():
        sys.exit(f'{path} not found: give the root of a HAT checkout')
    spec = importlib.util.spec_from_file_location('hat_official_arch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise(net: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values for every parameter: LayerNorm weights 1 +- 0.2, the rest N(0, s^2) with s
    0.5 for the relative-position tables, 0.1 for biases and 1/sqrt(fan_in) for weights."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if 'norm' in name.split('.')[-2] and name.endswith('.weight'):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith('relative_position_bias_table'):
                p.copy_(0.5 * noise)
            elif name.endswith('.bias'):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / p[0].numel() ** 0.5)


def body(net, lr: torch.Tensor, head: bool = False) -> torch.Tensor:
    """The official body features (``head``: then its ``conv_before_upsample``), padded and cropped."""
    h, w = lr.shape[-2:]
    ws = net.window_size
    x = F.pad(lr, (0, (-w) % ws, 0, (-h) % ws), 'reflect')
    x = net.conv_first(x)
    x = net.conv_after_body(net.forward_features(x)) + x
    if head:
        x = net.conv_before_upsample(x)
    return x[..., :h, :w]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--official-code', type=Path, required=True, help='root of a XPixelGroup/HAT checkout')
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args()
    official = load_official(args.official_code)
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    net = official.HAT(**CONFIG).eval()
    randomise(net, generator)
    cases = {}
    with torch.no_grad():
        for name, shape in CASES.items():
            lr = torch.rand(shape[0], 3, *shape[1:], generator=generator)
            cases[f'{name}.lr'] = lr
            cases[f'{name}.body'] = body(net, lr)
            if name == HEAD_CASE:
                cases[f'{name}.head'] = body(net, lr, head=True)
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.startswith(DROPPED)}
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {'source': 'github.com/XPixelGroup/HAT@1638a9a822581657811867bf670717f8371fc3e5 (Apache-2.0)'}
    save_file(state, args.out / 'official_state.safetensors', {**meta, 'config': json.dumps(CONFIG)})
    save_file(
        {k: v.contiguous() for k, v in cases.items()},
        args.out / 'cases.safetensors',
        {**meta, 'cases': json.dumps(list(CASES)), 'head_case': HEAD_CASE},
    )
    for path in sorted(args.out.glob('*.safetensors')):
        print(f'wrote {path} ({path.stat().st_size} bytes)')


if __name__ == '__main__':
    main()
