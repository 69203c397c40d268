"""Write the golden fixtures of tests/test_itsrn.py: the official ITSRN's outputs on a small random model.

The official code is https://github.com/codyshen0000/ITSRN at commit
5523d1ac2f02698eb502ed3ac779b9cd897fcadf. The repository has no licence file (no LICENSE, no
licence statement in its README): its code is the authors', all rights reserved. None of it is
copied here or into the package: this script imports its ``code/models`` package from a checkout
given on the command line, builds the official ``ITNSR`` model with its defaults
(``feat_unfold``, ``local_ensemble``, ``scale_token``; no coordinate embedding), its only encoder
(``rdn``, ``no_upsampling``) and random weights (seed 0), and saves, as ``.safetensors`` in
``tests/fixtures/itsrn/``:

- ``official_state.safetensors``: the official state dict (``model.sd`` of an official checkpoint),
  the official ``model`` name and args in its metadata, so a test can rebuild the official
  checkpoint layout and run ``gaussiansr-convert-itsrn`` on it;
- ``cases.safetensors``: per case ``<case>.lr`` (RGB [0,1], [B,3,h,w]), ``<case>.coord`` and
  ``<case>.cell`` (the queries, [B,Q,2]; the cell in LIIF's convention, 2 x ITSRN's ``scale``)
  and ``<case>.sr`` (the official output, denormalised, [B,Q,3]); the cases in its metadata.

Small configuration: the official RDN offers only configurations 'A' (20 blocks of 6 layers,
growth 32) and 'B'; it is built with 'A' and ``G0`` 8, then cut to 2 blocks of 2 dense layers by
replacing its ``RDBs`` with two official ``RDB`` of 2 layers and ``GFF[0]`` with the 1x1 conv they
need (its ``forward`` is unchanged and reads ``D``, set to 2). The ITSRN head has the kernel MLP
(``imnet_spec``) [16, 16]; its ``Score`` and ``Weight`` MLPs are [256], fixed in the official code.

The official model is called as its ``test.py`` / ``demo.py`` call it: input ``(lr - 0.5) / 0.5``,
output ``pred * 0.5 + 0.5``, queries ``make_coord`` of the output size and ``scale`` ``(1 / H,
1 / W)`` per query. ``Tensor.cuda`` is the identity on a machine without CUDA (``query_rgb`` calls
it on ``make_coord``); the official ``utils.py`` imports tensorboardX at the top, which is stubbed
when absent (only ``make_coord`` is used). Nothing else is changed: everything runs on the CPU in
float32.

    git clone https://github.com/codyshen0000/ITSRN /tmp/itsrn && git -C /tmp/itsrn checkout 5523d1a
    python scripts/make_itsrn_fixtures.py --official-code /tmp/itsrn
"""

import importlib
import sys

import torch

from official_fixtures import ROOT, parse_args, prepare_cpu_import, random_queries, whole_image_queries, write_fixtures

OUT_DIR = ROOT / 'tests' / 'fixtures' / 'itsrn'
COMMIT = '5523d1ac2f02698eb502ed3ac779b9cd897fcadf'
MODEL_SPEC = {
    'name': 'ITNSR',
    'args': {
        'feat_unfold': True,
        'local_ensemble': True,
        'scale_token': True,
        'encoder_spec': {'name': 'rdn', 'args': {'G0': 8, 'RDNconfig': 'A', 'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp', 'args': {'hidden_list': [16, 16], 'act': 'gelu'}},
    },
}
RDN_BLOCKS, RDN_LAYERS = 2, 2  # the official RDN cut to this size (see the docstring)
# name -> (batch, LR size, output size, or None with a number of random queries and their scale).
CASES = {
    'x2.5_12x17': (1, (12, 17), (30, 42)),
    'x3_10x10': (1, (10, 10), (30, 30)),
    'x1.7_9x14': (1, (9, 14), (15, 24)),
    'x6_4x6': (1, (4, 6), (24, 36)),
    'random_10x13_batch2': (2, (10, 13), None),
}
RANDOM_QUERIES, RANDOM_SCALE = 300, 3.3


def shrink_rdn(rdn) -> None:
    """Cut the official RDN (configuration 'A') to RDN_BLOCKS blocks of RDN_LAYERS dense layers."""
    g0 = rdn.SFENet2.out_channels
    growth = rdn.RDBs[0].convs[0].conv[0].out_channels
    rdb = type(rdn.RDBs[0])  # the official RDB class, built smaller
    blocks = [rdb(growRate0=g0, growRate=growth, nConvLayers=RDN_LAYERS) for _ in range(RDN_BLOCKS)]
    rdn.RDBs = torch.nn.ModuleList(blocks)
    rdn.GFF[0] = torch.nn.Conv2d(RDN_BLOCKS * g0, g0, 1, padding=0, stride=1)
    rdn.D = RDN_BLOCKS


def main(argv=None) -> int:
    args = parse_args(__doc__, 'codyshen0000/ITSRN', COMMIT, OUT_DIR, argv)
    prepare_cpu_import(args.official_code.resolve() / 'code')
    models, utils = importlib.import_module('models'), importlib.import_module('utils')

    torch.manual_seed(0)
    model = models.make(MODEL_SPEC)
    shrink_rdn(model.encoder)
    model.eval()
    tensors, cases = {}, {}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, (batch, lr_size, out_size) in CASES.items():
            lr = torch.rand(batch, 3, *lr_size, generator=g)
            # ITSRN's per-query scale is (1 / H, 1 / W): half LIIF's cell
            if out_size is None:
                coord, scale = random_queries(g, batch, lr_size, RANDOM_QUERIES, RANDOM_SCALE, factor=1)
            else:
                coord, scale = whole_image_queries(utils.make_coord, out_size, factor=1, batch=batch)
            tensors[f'{name}.lr'] = lr
            tensors[f'{name}.coord'] = coord
            tensors[f'{name}.cell'] = scale * 2  # LIIF's cell (exact: a power of two)
            tensors[f'{name}.sr'] = model((lr - 0.5) / 0.5, coord, scale) * 0.5 + 0.5
            cases[name] = {'lr_size': list(lr_size), 'out_size': list(out_size) if out_size else None}
    source = f'https://github.com/codyshen0000/ITSRN@{COMMIT}'
    spec = {**MODEL_SPEC, 'rdn_cut': {'blocks': RDN_BLOCKS, 'layers': RDN_LAYERS}}
    write_fixtures(args.out, source, model.state_dict(), spec, tensors, cases)
    return 0


if __name__ == '__main__':
    sys.exit(main())
