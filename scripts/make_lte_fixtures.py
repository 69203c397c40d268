"""Write the golden fixtures of tests/test_lte.py: the official LTE's outputs on small random models.

The official code is https://github.com/jaewon-lee-b/lte at commit
a8815d6ac8a643cd0463a092fa0f58e03935b343 (BSD 3-Clause License, Copyright (c) 2022, jaewon-lee-b;
its LICENSE file). None of it is copied here or into the package: this script imports its
``models`` package from a checkout given on the command line, builds the official LTE with a small
configuration (EDSR-baseline of 2 blocks x 16 channels, ``hidden_dim`` 16, MLP [16, 16]) and random
weights (seed 0), and saves, as ``.safetensors`` in ``tests/fixtures/lte/``:

- ``official_state.safetensors``: the official state dict (``model.sd`` of an official checkpoint),
  the official ``model`` name and args in its metadata, so a test can rebuild the official
  checkpoint layout and run ``gaussiansr-convert-lte`` on it;
- ``cases.safetensors``: per case ``<case>.lr`` (RGB [0,1], [1,3,h,w]), ``<case>.coord`` and
  ``<case>.cell`` (the queries, [1,Q,2]) and ``<case>.sr`` (the official output, denormalised,
  [1,Q,3]); the cases (output size, the cell factor of the official evaluation) in its metadata.

The official model is called as its ``test.py`` calls it: input ``(lr - 0.5) / 0.5``, output
``pred * 0.5 + 0.5``; whole-image queries are its ``make_coord`` and cell ``(2 / H, 2 / W)``. The
x6 case also records the output of the official evaluation's cell clip (``cell * max(scale /
scale_max, 1)``, scale_max 4: ``test.py`` and ``demo.py``) as ``<case>.sr_cell_clip``.

Only what these models need is imported (``models.models``, ``edsr``, ``mlp``, ``lte``: the package
``__init__`` would import SwinIR and timm); the official ``utils.py`` imports tensorboardX at the
top, which is stubbed when absent (only ``make_coord`` is used), and ``Tensor.cuda`` is the
identity on a machine without CUDA (``LTE.gen_feat`` calls it). Everything runs on the CPU in
float32.

    git clone https://github.com/jaewon-lee-b/lte /tmp/lte && git -C /tmp/lte checkout a8815d6
    python scripts/make_lte_fixtures.py --official-code /tmp/lte
"""

import sys

import torch

from official_fixtures import (
    ROOT,
    import_registry_package,
    parse_args,
    random_queries,
    whole_image_queries,
    write_fixtures,
)

OUT_DIR = ROOT / 'tests' / 'fixtures' / 'lte'
COMMIT = 'a8815d6ac8a643cd0463a092fa0f58e03935b343'
MODEL_SPEC = {
    'name': 'lte',
    'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 2, 'n_feats': 16, 'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16, 16]}},
        'hidden_dim': 16,
    },
}
SCALE_MAX = 4  # the official evaluation's default --scale_max
# name -> (LR size, output size, or None with a number of random queries and their cell's scale).
CASES = {
    'x2.5_12x17': ((12, 17), (30, 42)),
    'x3_16x16': ((16, 16), (48, 48)),
    'x1.7_9x14': ((9, 14), (15, 24)),
    'x6_6x8': ((6, 8), (36, 48)),
    'random_10x13': ((10, 13), None),
}
RANDOM_QUERIES, RANDOM_SCALE = 400, 3.3


def main(argv=None) -> int:
    args = parse_args(__doc__, 'jaewon-lee-b/lte', COMMIT, OUT_DIR, argv)
    models, utils = import_registry_package(args.official_code.resolve(), ('edsr', 'mlp', 'lte'))

    torch.manual_seed(0)
    model = models.make(MODEL_SPEC).eval()
    tensors, cases = {}, {}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, (lr_size, out_size) in CASES.items():
            lr = torch.rand(1, 3, *lr_size, generator=g)
            if out_size is None:
                coord, cell = random_queries(g, 1, lr_size, RANDOM_QUERIES, RANDOM_SCALE)
            else:
                coord, cell = whole_image_queries(utils.make_coord, out_size)
            inp = (lr - 0.5) / 0.5
            tensors[f'{name}.lr'] = lr
            tensors[f'{name}.coord'] = coord
            tensors[f'{name}.cell'] = cell
            tensors[f'{name}.sr'] = model(inp, coord, cell) * 0.5 + 0.5
            case = {'lr_size': list(lr_size), 'out_size': list(out_size) if out_size else None}
            scale = out_size[0] / lr_size[0] if out_size else RANDOM_SCALE
            if scale > SCALE_MAX:
                factor = max(scale / SCALE_MAX, 1)
                tensors[f'{name}.sr_cell_clip'] = model(inp, coord, cell * factor) * 0.5 + 0.5
                case['cell_clip_factor'] = factor
            cases[name] = case
    source = f'https://github.com/jaewon-lee-b/lte@{COMMIT}'
    write_fixtures(args.out, source, model.state_dict(), MODEL_SPEC, tensors, cases)
    return 0


if __name__ == '__main__':
    sys.exit(main())
