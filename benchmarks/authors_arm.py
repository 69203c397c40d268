"""The GaussianSR authors' released model as the fourth arm of benchmarks/real_photos.py (issue 21).

Trains the authors' ``GaussianSplatter`` (their ``models/gaussian.py`` + EDSR-baseline encoder with
their classifier head + MLP decoder, as their ``train_edsr-baseline-gaussian-batch16.yaml`` builds
it: kernel_size 5, decoder [256] x 4) on exactly the batches of the GaussianSR arm (the same
dataset, options, sampler and ``sample_seed``, built by BasicSR's own functions; a sha256 of every
batch goes to ``batch_digests.txt`` as the BasicSR arms write it), with their loss and optimiser
(L1 on (x - 0.5) / 0.5 normalised values, Adam lr 1e-4, no schedule change within the run), and
validates it on Set5 / Set14 x2-x4 under the same protocol (uint8 output, PSNR-Y, crop = scale,
BasicSR's ``calculate_psnr``).

Their files are read from ``../shared/reference/gaussiansr_authors`` and copied, at run time, into a
temporary package outside the repository (nothing of theirs is committed). What changes, all of it
so that it runs on the CPU (none of its maths):

* ``models/gaussian.py``: ``.cuda()`` removed from ``gen_feat``'s ``feat_coord`` (the one CUDA call of
  the model), see ``CPU_EDITS``;
* ``models/__init__.py`` (their registry, not in the reference copy): our 10-line ``register`` /
  ``make`` with the same behaviour;
* ``utils.py`` (their training utilities, which import tensorboardX): replaced by a module holding
  only the name ``to_pixel_samples`` that ``gaussian.py`` imports for its ``__main__`` example.

    python benchmarks/authors_arm.py --work $WORK --minutes 45 --eval-every 200
"""

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import gaussiansr_arch  # noqa: F401  (torchvision shim + registration before basicsr)

# isort: split
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.models.arbitrary_scale_sr_model import batch_digest

HERE = Path(__file__).resolve().parent
AUTHORS = HERE.parents[1] / 'shared' / 'reference' / 'gaussiansr_authors'

# (file, their line, our line): every change made to their code
CPU_EDITS = [
    (
        'models__gaussian.py',
        'self.feat_coord = make_coord(inp.shape[-2:], flatten=False).cuda().permute(2, 0, 1)',
        'self.feat_coord = make_coord(inp.shape[-2:], flatten=False).permute(2, 0, 1)',
    ),
]
REGISTRY_SHIM = """import copy
models = {}
def register(name):
    def decorator(cls):
        models[name] = cls
        return cls
    return decorator
def make(model_spec, args=None, load_sd=False):
    model_args = copy.deepcopy(model_spec['args'])
    model_args.update(args or {})
    return models[model_spec['name']](**model_args)
from . import edsr, mlp, gaussian  # noqa: E402
"""
UTILS_SHIM = 'def to_pixel_samples(img):\n    raise NotImplementedError("only their __main__ example uses it")\n'
# their train_edsr-baseline-gaussian-batch16.yaml
MODEL_SPEC = {
    'name': 'gaussian-splatter',
    'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
        'dec_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}},
        'kernel_size': 5,
    },
}


def import_authors_model(authors: Path, into: Path):
    """Their model package, with CPU_EDITS applied, imported from a temporary folder."""
    package = into / 'models'
    package.mkdir(parents=True)
    for name in ('gaussian', 'edsr', 'mlp'):
        text = (authors / f'models__{name}.py').read_text(encoding='utf-8')
        for file, theirs, ours in CPU_EDITS:
            if file == f'models__{name}.py':
                if text.count(theirs) != 1:
                    raise SystemExit(f'authors_arm: {file}: expected line not found once: {theirs}')
                text = text.replace(theirs, ours)
        (package / f'{name}.py').write_text(text, encoding='utf-8')
    (package / '__init__.py').write_text(REGISTRY_SHIM, encoding='utf-8')
    (into / 'utils.py').write_text(UTILS_SHIM, encoding='utf-8')
    sys.path.insert(0, str(into))
    import models  # their package

    return models


def train_loader(opt: dict):
    """The GaussianSR arm's train loader, built as basicsr.train.create_train_val_dataloader builds it."""
    dataset_opt = dict(opt['datasets']['train'], phase='train')
    dataset = build_dataset(dataset_opt)
    sampler = EnlargedSampler(dataset, 1, 0, dataset_opt.get('dataset_enlarge_ratio', 1))
    loader = build_dataloader(dataset, dataset_opt, num_gpu=0, dist=False, sampler=sampler, seed=opt['manual_seed'])
    return loader, sampler


@torch.no_grad()
def validate(model, opt: dict) -> dict:
    """PSNR-Y per val set, as the BasicSR arms' validation computes it (uint8 output, crop = scale)."""
    model.eval()
    results = {}
    for key, ds_opt in opt['datasets'].items():
        if not key.startswith('val'):
            continue
        dataset = build_dataset(dict(ds_opt, phase='val'))
        values = []
        for i in range(len(dataset)):
            item = dataset[i]
            lq, gt = item['lq'][None], item['gt'][None]
            h, w = gt.shape[-2:]
            coord = make_coord((h, w))[None]
            cell = make_cell((h, w), h * w)[None]
            torch.manual_seed(0)  # their eval draws a hard Gumbel sample: fix it
            pred = model((lq - 0.5) / 0.5, coord, torch.tensor([ds_opt['scale']], dtype=torch.float32), cell)
            sr = (pred * 0.5 + 0.5).clamp(0, 1).view(1, h, w, 3).permute(0, 3, 1, 2)
            crop = int(ds_opt['metrics']['psnr']['crop_border'])
            values.append(calculate_psnr(tensor2img(sr), tensor2img(gt), crop_border=crop, test_y_channel=True))
        results[ds_opt['name']] = float(np.mean(values))
    model.train()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work', type=Path, required=True, help='the folder of benchmarks/real_photos.py')
    parser.add_argument('--authors', type=Path, default=AUTHORS)
    parser.add_argument(
        '--minutes',
        type=float,
        default=45.0,
        help='training budget in CPU minutes of this process (validation excluded; CPU time, so that other '
        'work on the machine does not shorten the run)',
    )
    parser.add_argument('--eval-every', type=int, default=200)
    parser.add_argument('--max-iter', type=int, default=4000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    opt = yaml.safe_load((args.work / 'options' / 'gaussiansr.yml').read_text(encoding='utf-8'))
    torch.manual_seed(opt['manual_seed'])
    out = args.work / 'experiments' / 'real_photos_authors'
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        models = import_authors_model(args.authors, Path(tmp))
        model = models.make(MODEL_SPEC)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.L1Loss()
    n_params = sum(p.numel() for p in model.parameters())
    loader, sampler = train_loader(opt)

    digests = open(out / 'batch_digests.txt', 'w', encoding='utf-8')  # noqa: SIM115
    curves: dict = {}
    log = {'parameters': n_params, 'cpu_edits': CPU_EDITS, 'threads': torch.get_num_threads()}
    step, train_seconds, wall_seconds, epoch = 0, 0.0, 0.0, 0
    print(f'authors_arm: {n_params:,} parameters; budget {args.minutes} min of training', flush=True)
    while step < args.max_iter and train_seconds < args.minutes * 60:
        sampler.set_epoch(epoch)
        for batch in loader:
            step += 1
            digests.write(f'{step} {batch_digest(*(batch[k] for k in ("lq", "gt", "coord", "cell")))}\n')
            digests.flush()
            start, start_wall = time.process_time(), time.perf_counter()
            pred = model((batch['lq'] - 0.5) / 0.5, batch['coord'], batch['scale'], batch['cell'])
            loss = loss_fn(pred, (batch['gt'] - 0.5) / 0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_seconds += time.process_time() - start
            wall_seconds += time.perf_counter() - start_wall
            if not math.isfinite(loss.item()):
                print(f'authors_arm: non-finite loss at iteration {step}', flush=True)
            if step % 10 == 0:
                print(
                    f'iter {step} loss {loss.item():.4f} {train_seconds / step:.2f} CPU s/it '
                    f'({wall_seconds / step:.2f} s wall)',
                    flush=True,
                )
            done = step >= args.max_iter or train_seconds >= args.minutes * 60
            if step % args.eval_every == 0 or done:
                for name, value in validate(model, opt).items():
                    curves.setdefault(name, {})[step] = value
                print(f'iter {step} val ' + ' '.join(f'{k} {v[step]:.2f}' for k, v in curves.items()), flush=True)
                log.update(
                    iterations=step,
                    cpu_seconds_per_iter=train_seconds / step,
                    wall_seconds_per_iter=wall_seconds / step,
                    curves=curves,
                )
                tmp_path = out / 'curves.json.tmp'
                tmp_path.write_text(json.dumps(log, indent=1), encoding='utf-8')
                tmp_path.replace(out / 'curves.json')
            if done:
                break
        epoch += 1
    digests.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
