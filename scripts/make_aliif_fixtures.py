"""Write the golden fixtures of tests/test_aliif.py: the official A-LIIF's outputs on a small random model.

The official code is https://github.com/LeeHW-THU/A-LIIF at commit
3d55f82a7c3cb0847dd037d5ca954899381fd09f (BSD 3-Clause License, Copyright (c) 2022, LeeHW; its
``licence`` file). None of it is copied here or into the package: this script imports its
``models`` package from a checkout given on the command line, builds the official A-LIIF (its
``liif`` model with ``mlp_pw``, ``ExpansionNet`` and ``basis``, as in
``configs/train-div2k/train_edsr-baseline-A-liif.yaml``) with a small configuration and random
weights (seed 0), and saves, as ``.safetensors`` in ``tests/fixtures/aliif/``:

- ``official_state.safetensors``: the official state dict (``model.sd`` of an official checkpoint),
  the official ``model`` name and args in its metadata, so a test can rebuild the official
  checkpoint layout and run ``gaussiansr-convert-aliif`` on it;
- ``cases.safetensors``: per case ``<case>.lr`` (RGB [0,1], [1,3,h,w]), ``<case>.coord`` and
  ``<case>.cell`` (the queries, [1,Q,2]) and ``<case>.sr`` (the official output, denormalised,
  [1,Q,3]); the cases (LR and output size) in its metadata.

The configuration: the official decoder hard-codes its input width to 580 = 64 x 9 + 4
(``mlp_pw`` and ``basis``), so the encoder has 64 channels: EDSR-baseline of 1 block x 64
channels; 3 bases of an MLP [16] x 4 (``mlp_pw``'s fixed depth); expansion MLP [16, 16]. The
official initialisations leave a model this small nearly constant (output spatial std ~0.005, the
last biases dominate), so the bases' and the expansion MLP's weights are redrawn He-uniform
(+-sqrt(6 / fan_in), seed 2): the output spatial std is then 0.08-0.17 per channel. To keep the fixtures
small, every weight is then rounded to float16 before the official model runs (the model still
computes in float32 with those values) and the state dict is stored as float16: its float32 form is
exactly the weights the outputs come from.

The official model is called as its ``test.py`` calls it: input ``(lr - 0.5) / 0.5``, output
``pred * 0.5 + 0.5`` (the evaluation's clamp to [0, 1] is left out, as in the other fixtures);
whole-image queries are its ``make_coord`` and cell ``(2 / H, 2 / W)``. Its basis is built in the
``train`` state (parameters of the model, in its state dict, as in its training checkpoints);
``test.py``'s ``test`` state reads the same tensors back from the checkpoint file.

Only what the model needs is imported (``models.models``, ``edsr``, ``mlp``, ``expansion``,
``basis``, ``liif``); the official ``utils.py`` imports tensorboardX at the top, which is stubbed
when absent (only ``make_coord`` is used), and ``Tensor.cuda`` is the identity on a machine without
CUDA (``query_rgb`` calls it). Everything runs on the CPU in float32; no official line is changed.

    git clone https://github.com/LeeHW-THU/A-LIIF /tmp/aliif && git -C /tmp/aliif checkout 3d55f82
    python scripts/make_aliif_fixtures.py --official-code /tmp/aliif
"""

import contextlib
import io
import math
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

OUT_DIR = ROOT / 'tests' / 'fixtures' / 'aliif'
COMMIT = '3d55f82a7c3cb0847dd037d5ca954899381fd09f'
MODEL_SPEC = {
    'name': 'liif',
    'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 64, 'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp_pw', 'args': {'out_dim': 3, 'hidden_list': [16, 16, 16, 16]}},
        'pdn_spec': {'name': 'ExpansionNet', 'args': {'in_dim': 580, 'out_dim': 3, 'hidden_list': [16, 16]}},
        'basis_spec': {'name': 'basis', 'args': {'basis_num': 3, 'hidden': 16, 'state': 'train', 'path': None}},
    },
}
# name -> (LR size, output size, or None with a number of random queries and their cell's scale).
CASES = {
    'x2.5_8x10': ((8, 10), (20, 25)),
    'x3_6x6': ((6, 6), (18, 18)),
    'x1.7_7x11': ((7, 11), (12, 19)),
    'random_6x9': ((6, 9), None),
}
RANDOM_QUERIES, RANDOM_SCALE = 200, 3.3


def redraw_decoder_weights(model, generator: torch.Generator) -> None:
    """The bases' and the expansion MLP's weights, in place, uniform in +-sqrt(6 / fan_in) (He-uniform)."""
    sd = model.state_dict()  # shares the parameters' storage (the basis lists hold the same tensors)
    fan_ins = {}
    for key, value in sd.items():
        if key.startswith('basis.w'):  # flat [K, out * in]; out from basis.bias{i + 1}
            fan_ins[key] = value.shape[1] // sd[f'basis.bias{int(key[len("basis.w") :]) + 1}'].shape[1]
        elif key.startswith('pdn.') and key.endswith('.weight'):  # nn.Linear [out, in]
            fan_ins[key] = value.shape[1]
    for key, fan_in in fan_ins.items():
        sd[key].copy_((torch.rand(sd[key].shape, generator=generator) * 2 - 1) * math.sqrt(6 / fan_in))


def main(argv=None) -> int:
    args = parse_args(__doc__, 'LeeHW-THU/A-LIIF', COMMIT, OUT_DIR, argv)
    modules = ('edsr', 'mlp', 'expansion', 'basis', 'liif')
    models, utils = import_registry_package(args.official_code.resolve(), modules)

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # the basis prints 'init_basis_use_kaiming'
        model = models.make(MODEL_SPEC).eval()
    with torch.no_grad():
        redraw_decoder_weights(model, torch.Generator().manual_seed(2))
        for tensor in model.state_dict().values():  # in place: the basis lists hold the parameters
            tensor.copy_(tensor.half().float())
    tensors, cases = {}, {}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, (lr_size, out_size) in CASES.items():
            lr = torch.rand(1, 3, *lr_size, generator=g)
            if out_size is None:
                coord, cell = random_queries(g, 1, lr_size, RANDOM_QUERIES, RANDOM_SCALE)
            else:
                coord, cell = whole_image_queries(utils.make_coord, out_size)
            tensors[f'{name}.lr'] = lr
            tensors[f'{name}.coord'] = coord
            tensors[f'{name}.cell'] = cell
            tensors[f'{name}.sr'] = model((lr - 0.5) / 0.5, coord, cell) * 0.5 + 0.5
            cases[name] = {'lr_size': list(lr_size), 'out_size': list(out_size) if out_size else None}
    source = f'https://github.com/LeeHW-THU/A-LIIF@{COMMIT}'
    state = {k: v.half() for k, v in model.state_dict().items()}  # the float16 values it ran with
    write_fixtures(args.out, source, state, MODEL_SPEC, tensors, cases)
    return 0


if __name__ == '__main__':
    sys.exit(main())
