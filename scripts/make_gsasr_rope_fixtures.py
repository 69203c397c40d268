"""Write the golden fixtures of tests/test_gsasr_rope.py: GSASR's official RoPE encoder and head on small random models.

The official code is https://github.com/ChrisDud0257/GSASR at commit
9d2eb64a51303ce7a22fd672197185488b38e10a (Apache License 2.0, its LICENSE file; the same commit as
``../shared/reference/gsasr``, which does not hold these two files). None of it is copied here or
into the package: this script imports ``utils/hatropeamp.py`` (``HATNOUP_ROPE_AMP``) and
``utils/fea2gsropeamp.py`` (``Fea2GS_ROPE_AMP``) from a checkout given on the command line (by file
path; they need torch and einops only), builds small configurations (``ENCODER``, ``HEADS`` below),
gives every parameter random values (seed 0; LayerNorm weights around 1, the RoPE frequencies
N(0, 1) so that a wrong position shows, biases 0.1 and weights 1/sqrt(fan_in)) and saves, as
``.safetensors`` in ``tests/fixtures/gsasr_rope/``:

- ``encoder.safetensors``: the official ``HATNOUP_ROPE_AMP`` state dict (``state.*``), ``ENCODER``
  in its metadata, and per case ``<case>.lr`` (RGB [0, 1]) and ``<case>.feat``: the official
  ``forward`` (``conv_first``, body, ``conv_before_upsample``) of the input reflect-padded at the
  bottom/right to a multiple of the window, cropped back (cases 8x8, and 7x10 padded to 8x12);
- ``head_<name>.safetensors`` per head configuration: the official ``Fea2GS_ROPE_AMP`` state dict
  (``state.*``), its options in the metadata, the input features ``feat``, the scales ``scale``, and
  ``raw``: the outputs of its five MLP heads before the official reshape and mean transform,
  [B, Hg, Wg, 9] = sigma (2), rho, alpha, rgb (3), mean (x, y), captured with forward hooks. Head
  ``a`` (16 seeds, window 4: the released layout, seeds side = window; one 2x2 pixel shuffle: 4
  Gaussians per LR pixel, to keep the files small) reads 64-channel features: its ``feat`` is the
  official encoder's output on ``lr`` (5x7 reflect-padded to 8x8, kept), so encoder + head ``a`` is
  a tiny HAT-L GSASR end to end. Head ``b`` (9 seeds, window 2) has seeds side != window, where the
  official RoPE numbers the keys on the raster of the wider of the two (3 columns, not 2), on random
  8-channel features (batch 2, two scales).

Everything runs on the CPU in float32 (the official "AMP" is autocast on the GPU; it changes
nothing on the CPU).

    git clone https://github.com/ChrisDud0257/GSASR /tmp/gsasr && git -C /tmp/gsasr checkout 9d2eb64
    python scripts/make_gsasr_rope_fixtures.py --official-code /tmp/gsasr
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / 'tests' / 'fixtures' / 'gsasr_rope'
SEED = 0
SOURCE = 'github.com/ChrisDud0257/GSASR@9d2eb64a51303ce7a22fd672197185488b38e10a (Apache-2.0)'
# HATNOUP_ROPE_AMP options (its constructor's names): embed 8 / 2 heads (head dim 4, the least RoPE
# takes), one group of an unshifted and a shifted block, window 4 (OCA window 6); conv_scale raised
# from 0.01 so that the CAB branch weighs in.
ENCODER = {
    'img_size': 8,
    'in_chans': 3,
    'embed_dim': 8,
    'depths': [2],
    'num_heads': [2],
    'window_size': 4,
    'compress_ratio': 3,
    'squeeze_factor': 4,
    'conv_scale': 0.3,
    'overlap_ratio': 0.5,
    'mlp_ratio': 2.0,
    'upsampler': 'pixelshuffle',
    'resi_connection': '1conv',
    'drop_path_rate': 0.0,
}
ENCODER_CASES = {'8x8': (8, 8), '7x10': (7, 10)}
_HEAD = {
    'channel': 8,
    'num_heads': 2,
    'num_crossattn_blocks': 1,
    'num_crossattn_layers': 2,
    'num_selfattn_blocks': 1,
    'num_selfattn_layers': 2,
}
# name -> (Fea2GS_ROPE_AMP options, input: LR size for 'a' (through the encoder), else features [B, C, h, w], scales)
HEADS = {
    'a': ({**_HEAD, 'inchannel': 64, 'num_gs_seed': 16, 'window_size': 4, 'shuffle_scale2': 1}, (5, 7), [2.5]),
    'b': (
        {**_HEAD, 'inchannel': 8, 'num_gs_seed': 9, 'window_size': 2, 'shuffle_scale1': 2, 'shuffle_scale2': 1},
        (2, 8, 4, 6),
        [3.0, 1.5],
    ),
}
MLP_HEADS = ('mlp_block_sigma', 'mlp_block_rho', 'mlp_block_alpha', 'mlp_block_rgb', 'mlp_block_mean')


def load(checkout: Path, name: str):
    """An official module of ``utils/``, imported from its file."""
    path = checkout / 'utils' / f'{name}.py'
    if not path.is_file():
        sys.exit(f'{path} not found: give the root of a ChrisDud0257/GSASR checkout')
    spec = importlib.util.spec_from_file_location(f'gsasr_official_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise(net: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values for every parameter (see the module docstring)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            leaf = name.split('.')
            if len(leaf) > 1 and 'norm' in leaf[-2] and name.endswith('.weight'):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith('rope_freqs'):
                p.copy_(noise)
            elif name.endswith('.bias') or name.endswith('_bias'):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / max(p[0].numel(), 1) ** 0.5)


def pad(lr: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = lr.shape[-2:]
    return F.pad(lr, (0, (-w) % multiple, 0, (-h) % multiple), 'reflect')


def raw_outputs(head, feat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[B, Hg, Wg, 9]: the five MLP heads' outputs in the official forward."""
    captured = {}
    hooks = [
        getattr(head, name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
        for name in MLP_HEADS
    ]
    head(feat, scale)
    for hook in hooks:
        hook.remove()
    return torch.cat([captured[name] for name in MLP_HEADS], dim=-1)


def state_of(net) -> dict:
    return {f'state.{k}': v.contiguous() for k, v in net.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--official-code', type=Path, required=True, help='root of a ChrisDud0257/GSASR checkout')
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args()
    hat = load(args.official_code, 'hatropeamp')
    fea2gs = load(args.official_code, 'fea2gsropeamp')
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    encoder = hat.HATNOUP_ROPE_AMP(**ENCODER).eval()
    randomise(encoder, generator)
    window = ENCODER['window_size']
    files = {}
    with torch.no_grad():
        tensors = state_of(encoder)
        for name, (h, w) in ENCODER_CASES.items():
            lr = torch.rand(1, 3, h, w, generator=generator)
            tensors[f'{name}.lr'] = lr
            tensors[f'{name}.feat'] = encoder(pad(lr, window))[..., :h, :w].contiguous()
        files['encoder'] = (tensors, {'config': json.dumps(ENCODER), 'cases': json.dumps(list(ENCODER_CASES))})
        for name, (config, source, scales) in HEADS.items():
            head = fea2gs.Fea2GS_ROPE_AMP(**config).eval()
            randomise(head, generator)
            tensors = state_of(head)
            if name == 'a':
                lr = torch.rand(1, 3, *source, generator=generator)
                tensors['lr'] = lr
                feat = encoder(pad(lr, config['window_size']))
            else:
                feat = torch.randn(*source, generator=generator)
            scale = torch.tensor(scales)
            tensors.update(feat=feat.contiguous(), scale=scale, raw=raw_outputs(head, feat, scale).contiguous())
            files[f'head_{name}'] = (tensors, {'config': json.dumps(config)})
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (tensors, meta) in files.items():
        save_file(tensors, args.out / f'{name}.safetensors', {'source': SOURCE, **meta})
    total = 0
    for path in sorted(args.out.glob('*.safetensors')):
        total += path.stat().st_size
        print(f'wrote {path} ({path.stat().st_size} bytes)')
    print(f'{total} bytes in all')


if __name__ == '__main__':
    main()
