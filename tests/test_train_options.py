"""The train YAMLs say what they reproduce, and each variant changes exactly one thing.

The paper's schedule (2000 epochs x 1000 iterations, lr halved every 200 epochs) against the
GaussianSR paper and the authors' config; LIIF-length and ablation YAMLs against the paper YAML.
"""

import logging
from pathlib import Path

import pytest
import yaml

TRAIN = Path(__file__).resolve().parents[1] / 'options' / 'train'
PAPER = 'train_GaussianSR_EDSR-baseline_DIV2K.yml'


def load(name: str) -> dict:
    return yaml.safe_load((TRAIN / name).read_text())


def flatten(d: dict, prefix: str = '') -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def differences(a: dict, b: dict) -> set:
    fa, fb = flatten(a), flatten(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


@pytest.mark.parametrize('name', [PAPER, 'train_GaussianSR_RDN_DIV2K.yml', 'train_GaussianSR_SwinIR_DIV2K.yml'])
def test_paper_yamls_are_the_paper_model_and_schedule(name):
    opt = load(name)
    assert opt['network_g']['image_skip'] == 'none'
    assert opt['network_g']['splat_channels'] == 8
    train = opt['train']
    assert train['total_iter'] == 2_000_000
    assert train['scheduler']['milestones'] == list(range(200_000, 2_000_000, 200_000))
    assert train['scheduler']['gamma'] == 0.5 and train['optim_g']['lr'] == 1e-4
    data = opt['datasets']['train']
    # the paper's batch is the total over all processes (4 V100s, DataParallel): no per-process batch
    assert (data['total_batch_size'], data['lr_size'], data['sample_q']) == (16, 48, 2304)
    assert 'batch_size_per_gpu' not in data
    assert (data['scale_min'], data['scale_max'], data['batch_scale']) == (1, 4, True)
    assert data['lr_degradation'] == 'pil'


@pytest.mark.parametrize(
    'name, changed',
    [
        ('train_GaussianSR_EDSR-baseline_DIV2K_1M.yml', {'name', 'train.total_iter', 'train.scheduler.milestones'}),
        ('train_GaussianSR_EDSR-baseline_DIV2K_Bicubic-64.yml', {'name', 'network_g.splat_channels'}),
        ('train_GaussianSR_EDSR-baseline_DIV2K_image-skip.yml', {'name', 'network_g.image_skip'}),
    ],
)
def test_variants_change_one_thing(name, changed):
    assert differences(load(PAPER), load(name)) == changed


def test_liif_length_schedule_matches_liif_yaml():
    ours, liif = load('train_GaussianSR_EDSR-baseline_DIV2K_1M.yml'), load('train_LIIF_EDSR-baseline_DIV2K.yml')
    assert ours['train']['total_iter'] == liif['train']['total_iter'] == 1_000_000
    assert ours['train']['scheduler'] == liif['train']['scheduler']
    assert load('train_GaussianSR_EDSR-baseline_DIV2K_Bicubic-64.yml')['network_g']['splat_channels'] == 0
    assert load('train_GaussianSR_EDSR-baseline_DIV2K_image-skip.yml')['network_g']['image_skip'] == 'bilinear'


def test_every_train_yaml_header_names_its_source():
    for path in sorted(TRAIN.glob('*.yml')):
        header = path.read_text().split('\nname:')[0]
        assert 'Schedule' in header or 'schedule' in header, path.name
        assert f'gaussiansr-train -opt options/train/{path.name}' in header or 'LIIF' in path.name, path.name


METASR = 'train_MetaSR_EDSR-baseline_DIV2K.yml'


def test_metasr_yaml_is_the_liif_yaml_with_the_metasr_network():
    """The paper's MetaSR row: LIIF's schedule and data, only name and network_g differ."""
    from basicsr.archs import build_network

    import gaussiansr_arch  # noqa: F401  (registers the archs)

    liif, metasr = load('train_LIIF_EDSR-baseline_DIV2K.yml'), load(METASR)
    changed = differences(liif, metasr)
    assert 'name' in changed and all(k == 'name' or k.startswith('network_g.') for k in changed), changed
    assert metasr['network_g'] == {
        'type': 'MetaSR',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 64, 'num_block': 16, 'res_scale': 1.0},
        'hidden': [256],
    }
    assert metasr['train']['total_iter'] == 1_000_000
    assert metasr['train']['scheduler']['milestones'] == [200_000, 400_000, 600_000, 800_000]
    net = build_network(dict(metasr['network_g']))
    assert sum(p.numel() for p in net.parameters()) == 1_665_536  # README's parameter table
    header = (TRAIN / METASR).read_text().split('\nname:')[0]
    assert 'EDSR-baseline-MetaSR' in header and '34.64/30.93/28.92' in header  # paper Table 1, DIV2K-val


@pytest.mark.parametrize('name', ['train_GaussianSR_RDN_DIV2K.yml', 'train_GaussianSR_SwinIR_DIV2K.yml'])
def test_rdn_swinir_headers_say_the_paper_reports_edsr_baseline_only(name):
    header = ' '.join((TRAIN / name).read_text().split('\nname:')[0].replace('#', ' ').split())
    assert 'The paper reports EDSR-baseline only' in header
    assert 'its schedule is applied unchanged' in header
    assert differences(load(PAPER), load(name)) <= {'name', 'datasets.train.name'} | {
        k for k in flatten(load(name)) | flatten(load(PAPER)) if k.startswith('network_g.')
    }


def test_every_train_yaml_gives_the_total_batch_not_a_per_process_one():
    """BasicSR multiplies batch_size_per_gpu by the process count; the YAMLs give the total instead."""
    for path in sorted(TRAIN.glob('*.yml')):
        data = load(path.name)['datasets']['train']
        assert 'batch_size_per_gpu' not in data, path.name
        # LIIF's recipe trains at a total of 16; A-LIIF's official config at 8 (its YAML's header)
        assert data.get('total_batch_size') == (8 if path.name.startswith('train_ALIIF_') else 16), path.name


@pytest.mark.parametrize(
    'launch, per_gpu',
    [
        ({'dist': False, 'num_gpu': 0}, 16),  # CPU
        ({'dist': False, 'num_gpu': 1}, 16),
        ({'dist': True, 'world_size': 2, 'num_gpu': 2}, 8),  # torchrun --nproc_per_node=2
        ({'dist': True, 'world_size': 4, 'num_gpu': 4}, 4),  # README's 4-GPU command: the authors' 4 x 4
        ({'dist': False, 'num_gpu': 4}, 4),  # BasicSR's DataParallel: one process, batch x num_gpu
    ],
)
def test_paper_total_batch_is_16_whatever_the_launch(launch, per_gpu):
    from gaussiansr_arch.utils.total_batch import check_total_batch, resolve_total_batch

    opt = {**load(PAPER), **launch, 'is_train': True}
    resolve_total_batch(opt)
    assert opt['datasets']['train']['batch_size_per_gpu'] == per_gpu
    assert check_total_batch(opt) == 16


def test_total_batch_not_divisible_stops_and_explicit_per_gpu_wins(caplog):
    from gaussiansr_arch.utils.total_batch import TotalBatchError, check_total_batch, resolve_total_batch

    opt = {**load(PAPER), 'dist': True, 'world_size': 3, 'num_gpu': 3, 'is_train': True}
    with pytest.raises(TotalBatchError, match=r'total_batch_size 16 cannot be split over 3 processes'):
        resolve_total_batch(opt)
    for bad in (0, 16.0, '16', True):
        opt['datasets']['train']['total_batch_size'] = bad
        with pytest.raises(TotalBatchError, match='must be a positive integer'):
            resolve_total_batch(opt)
    # --force_yml datasets:train:batch_size_per_gpu=4 (or a YAML giving both): BasicSR's meaning, logged
    opt = {**load(PAPER), 'dist': False, 'num_gpu': 0, 'is_train': True}
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    resolve_total_batch(opt)
    assert opt['datasets']['train']['batch_size_per_gpu'] == 4
    logger = logging.getLogger('basicsr')  # BasicSR's root logger does not propagate
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger='basicsr'):
            assert check_total_batch(opt) == 4
    finally:
        logger.removeHandler(caplog.handler)
    assert 'Total batch per iteration: 4 (batch_size_per_gpu 4 x 1 process)' in caplog.text
    assert 'batch_size_per_gpu 4 given: it wins over total_batch_size 16 (total batch 4, not 16)' in caplog.text
