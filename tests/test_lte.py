"""LTE: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/lte/`` holds a small official LTE's state dict (random weights) and its outputs on
five cases (``scripts/make_lte_fixtures.py`` wrote them from the official code): the state dict is
put in the official checkpoint layout, converted by ``gaussiansr-convert-lte`` and run here on the
same inputs, so these tests need neither the official code nor its weights.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import gaussiansr_arch
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.lte_arch import LTE
from gaussiansr_arch.tools import convert_lte
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'lte'
TOLERANCE = 1e-5


def _metadata(path: Path) -> dict:
    with safe_open(str(path), 'pt') as f:
        return f.metadata()


STATE_META = _metadata(FIXTURES / 'official_state.safetensors')
CASES = json.loads(_metadata(FIXTURES / 'cases.safetensors')['cases'])


def official_checkpoint(tmp_path: Path, sd: dict | None = None, name: str = 'lte', file: str = 'official.pth') -> Path:
    """The fixture's state dict in the official checkpoint layout ``{'model': {name, args, sd}}``."""
    spec = json.loads(STATE_META['model'])
    sd = load_file(FIXTURES / 'official_state.safetensors') if sd is None else sd
    path = tmp_path / file
    torch.save({'model': {'name': name, 'args': spec['args'], 'sd': sd}, 'epoch': 1000}, path)
    return path


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('lte')
    dst = tmp / 'LTE_official.pth'
    assert convert_lte.main([str(official_checkpoint(tmp)), str(dst)]) == 0
    return dst


@pytest.fixture(scope='module')
def cases() -> dict:
    return load_file(FIXTURES / 'cases.safetensors')


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize('case', list(CASES))
def test_parity_with_official_outputs(case, converted, cases):
    """Our query on the official queries, and (whole images) our upscale, equal the official output."""
    net = gaussiansr_arch.load_model(str(converted))
    lr, coord, cell, want = (cases[f'{case}.{k}'] for k in ('lr', 'coord', 'cell', 'sr'))
    clip = f'{case}.sr_cell_clip' in cases
    with torch.no_grad():
        if clip:  # beyond x4: the official forward (no clip) and the official evaluation (cell clip)
            net.scale_max = None
        diffs = {'query': max_diff(net(lr, coord, cell), want)}
        if clip:
            net.scale_max = 4.0
            diffs['query, cell clip'] = max_diff(net(lr, coord, cell), cases[f'{case}.sr_cell_clip'])
        size = CASES[case]['out_size']
        if size is not None:
            assert torch.equal(make_coord(size), coord[0]) and torch.equal(make_cell(size, len(coord[0])), cell[0])
            image = net.upscale(lr, size=size, chunk_size=500).flatten(2).transpose(1, 2)
            diffs['upscale'] = max_diff(image, cases[f'{case}.sr_cell_clip' if clip else f'{case}.sr'])
    print(f'{case}: max |diff| ' + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_fixture_outputs_are_not_the_skip_alone(cases):
    """The estimator matters in the fixtures: the output is not the bilinear LR skip."""
    net = LTE(encoder_opt={'num_feat': 16, 'num_block': 2}, hidden_dim=16, hidden=[16, 16])
    torch.nn.init.zeros_(net.estimator.mlp[-1].weight)
    torch.nn.init.zeros_(net.estimator.mlp[-1].bias)
    case = 'x3_16x16'
    with torch.no_grad():
        skip_only = net(cases[f'{case}.lr'], cases[f'{case}.coord'], cases[f'{case}.cell'])
    assert max_diff(skip_only, cases[f'{case}.sr']) > 1e-2


def test_converted_file_records_network_g(converted):
    data = torch.load(converted, map_location='cpu', weights_only=True)
    assert data['network_g'] == {
        'type': 'LTE',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 16, 'num_block': 2, 'res_scale': 1.0},
        'hidden_dim': 16,
        'hidden': [16, 16],
    }
    assert data['source'] == {'file': 'official.pth', 'epoch': 1000}
    assert not any('mean' in k for k in data['params'])  # the unused mean shifts are dropped


def test_bare_weights_are_detected(converted, tmp_path, cases):
    """``load_model`` on the converted parameters alone (no network_g) builds the same LTE."""
    params = torch.load(converted, map_location='cpu', weights_only=True)['params']
    assert detect_network_opt(params) == {
        'type': 'LTE',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 16, 'num_block': 2},
        'hidden_dim': 16,
        'hidden': [16, 16],
    }
    bare = tmp_path / 'bare.safetensors'
    save_weights(str(bare), params)
    net = gaussiansr_arch.load_model(str(bare))
    assert isinstance(net, LTE)
    case = 'x1.7_9x14'
    with torch.no_grad():
        out = net(cases[f'{case}.lr'], cases[f'{case}.coord'], cases[f'{case}.cell'])
    assert max_diff(out, cases[f'{case}.sr']) <= TOLERANCE


def test_scale_max_is_checked():
    with pytest.raises(ValueError, match='scale_max must be > 0 or None'):
        LTE(scale_max=0)


# ---------------------------------------------------------------- converter command line
def _exit_code(argv) -> int:
    with pytest.raises(SystemExit) as info:
        convert_lte.main(argv)
    return info.value.code


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('gaussiansr-convert-lte: error:')
    return err


def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'lte.pth'
    assert _exit_code([str(tmp_path / 'missing.pth'), str(dst)]) == 2
    assert 'does not exist' in _error_line(capsys)

    basicsr_file = tmp_path / 'basicsr.pth'
    torch.save({'params': {'conv.weight': torch.zeros(1)}}, basicsr_file)
    assert _exit_code([str(basicsr_file), str(dst)]) == 2
    assert 'not an official LTE checkpoint' in _error_line(capsys)

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    assert _exit_code([str(garbage), str(dst)]) == 2
    assert 'cannot be loaded' in _error_line(capsys)

    liif = official_checkpoint(tmp_path, name='liif', file='liif.pth')
    assert _exit_code([str(liif), str(dst)]) == 2
    assert "model 'liif' is not supported (supported: 'lte')" in _error_line(capsys)

    sd = load_file(FIXTURES / 'official_state.safetensors')
    odd = official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert _exit_code([str(odd), str(dst)]) == 2
    assert "unexpected key(s) ['extra.weight']" in _error_line(capsys)

    short = {k: v for k, v in sd.items() if k != 'phase.weight'}
    missing_key = official_checkpoint(tmp_path, short, file='short.pth')
    assert _exit_code([str(missing_key), str(dst)]) == 2
    assert 'estimator.phase.weight' in _error_line(capsys)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    src, dst = official_checkpoint(tmp_path), tmp_path / 'out' / 'lte.pth'
    assert convert_lte.main([str(src), str(dst)]) == 0
    before = dst.read_bytes()
    capsys.readouterr()
    assert _exit_code([str(src), str(dst)]) == 2
    assert '--force' in _error_line(capsys) and dst.read_bytes() == before
    assert convert_lte.main([str(src), str(dst), '--force']) == 0
    assert not [p.name for p in dst.parent.iterdir() if p.name != 'lte.pth']  # no temporary file left
