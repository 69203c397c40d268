"""A-LIIF: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/aliif/`` holds a small official A-LIIF's state dict (random weights, float16
values) and its outputs on four cases (``scripts/make_aliif_fixtures.py`` wrote them from the
official code): the state dict is put in the official checkpoint layout, converted by
``gaussiansr-convert-aliif`` and run here on the same inputs, so these tests need neither the
official code nor its weights.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import gaussiansr_arch
from gaussiansr_arch.archs.aliif_arch import ALIIF
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.liif_arch import LIIF, MetaSR
from gaussiansr_arch.tools import convert_aliif
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'aliif'
TOLERANCE = 1e-5


def _metadata(path: Path) -> dict:
    with safe_open(str(path), 'pt') as f:
        return f.metadata()


STATE_META = _metadata(FIXTURES / 'official_state.safetensors')
CASES = json.loads(_metadata(FIXTURES / 'cases.safetensors')['cases'])
NETWORK_OPT = {
    'encoder': 'edsr-baseline',
    'num_basis': 3,
    'hidden': [16, 16, 16, 16],
    'expansion_hidden': [16, 16],
}


def official_state() -> dict:
    """The official state dict in float32 (stored as float16, the values the official model ran with)."""
    return {k: v.float() for k, v in load_file(FIXTURES / 'official_state.safetensors').items()}


def official_checkpoint(tmp_path: Path, sd: dict | None = None, args: dict | None = None, file='official.pth') -> Path:
    """The fixture's state dict in the official checkpoint layout ``{'model': {name, args, sd}}``."""
    spec = json.loads(STATE_META['model'])
    path = tmp_path / file
    model = {'name': spec['name'], 'args': spec['args'] if args is None else args}
    torch.save({'model': {**model, 'sd': official_state() if sd is None else sd}, 'epoch': 1000}, path)
    return path


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('aliif')
    dst = tmp / 'ALIIF_official.pth'
    assert convert_aliif.main([str(official_checkpoint(tmp)), str(dst)]) == 0
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
    with torch.no_grad():
        diffs = {'query': max_diff(net(lr, coord, cell), want)}
        size = CASES[case]['out_size']
        if size is not None:
            assert torch.equal(make_coord(size), coord[0]) and torch.equal(make_cell(size, len(coord[0])), cell[0])
            image = net.upscale(lr, size=size, chunk_size=100).flatten(2).transpose(1, 2)
            diffs['upscale'] = max_diff(image, want)
    print(f'{case}: max |diff| ' + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_fixture_outputs_depend_on_the_mixture(converted, cases):
    """The per-query mixture matters in the fixtures: one basis for all (the first) is > 1e-3 away."""
    net = gaussiansr_arch.load_model(str(converted))
    with torch.no_grad():
        for weight, bias in zip(net.basis.weights, net.basis.biases):
            weight.copy_(weight[:1].expand_as(weight))
            bias.copy_(bias[:1].expand_as(bias))
        case = 'x3_6x6'
        one_basis = net(cases[f'{case}.lr'], cases[f'{case}.coord'], cases[f'{case}.cell'])
    assert max_diff(one_basis, cases[f'{case}.sr']) > 1e-3


def test_converted_file_records_network_g(converted):
    data = torch.load(converted, map_location='cpu', weights_only=True)
    assert data['network_g'] == {
        'type': 'ALIIF',
        **NETWORK_OPT,
        'encoder_opt': {'num_feat': 64, 'num_block': 1, 'res_scale': 1.0},
    }
    assert data['source'] == {'file': 'official.pth', 'epoch': 1000}
    assert not any('mean' in k for k in data['params'])  # the unused mean shifts are dropped
    assert data['params']['basis.weights.0'].shape == (3, 16, 580)


def test_bare_weights_are_detected(converted, tmp_path, cases):
    """``load_model`` on the converted parameters alone (no network_g) builds the same A-LIIF."""
    params = torch.load(converted, map_location='cpu', weights_only=True)['params']
    assert detect_network_opt(params) == {
        'type': 'ALIIF',
        **NETWORK_OPT,
        'encoder_opt': {'num_feat': 64, 'num_block': 1},
    }
    bare = tmp_path / 'bare.safetensors'
    save_weights(str(bare), params)
    net = gaussiansr_arch.load_model(str(bare))
    assert isinstance(net, ALIIF)
    case = 'x1.7_7x11'
    with torch.no_grad():
        out = net(cases[f'{case}.lr'], cases[f'{case}.coord'], cases[f'{case}.cell'])
    assert max_diff(out, cases[f'{case}.sr']) <= TOLERANCE


def test_liif_and_aliif_detection_do_not_cross():
    """LIIF's and MetaSR's weights are not taken for A-LIIF's, nor A-LIIF's for theirs."""
    tiny = {'encoder_opt': {'num_feat': 8, 'num_block': 1}}
    aliif = ALIIF(**tiny, num_basis=2, hidden=[8], expansion_hidden=[8]).state_dict()
    assert detect_network_opt(aliif)['type'] == 'ALIIF'
    assert not any(k.startswith('imnet.') for k in aliif)
    for arch in (LIIF(**tiny, hidden=[8]), MetaSR(**tiny)):
        state = arch.state_dict()
        assert detect_network_opt(state)['type'] == type(arch).__name__
        assert not any(k.startswith('basis.') for k in state)


def test_num_basis_is_checked():
    with pytest.raises(ValueError, match='num_basis must be >= 1'):
        ALIIF(num_basis=0)


# ---------------------------------------------------------------- converter command line
def _exit_code(argv) -> int:
    with pytest.raises(SystemExit) as info:
        convert_aliif.main(argv)
    return info.value.code


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('gaussiansr-convert-aliif: error:')
    return err


def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'aliif.pth'
    assert _exit_code([str(tmp_path / 'missing.pth'), str(dst)]) == 2
    assert 'does not exist' in _error_line(capsys)

    basicsr_file = tmp_path / 'basicsr.pth'
    torch.save({'params': {'conv.weight': torch.zeros(1)}}, basicsr_file)
    assert _exit_code([str(basicsr_file), str(dst)]) == 2
    assert 'not an official A-LIIF checkpoint' in _error_line(capsys)

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    assert _exit_code([str(garbage), str(dst)]) == 2
    assert 'cannot be loaded' in _error_line(capsys)

    spec = json.loads(STATE_META['model'])
    liif_args = {'encoder_spec': spec['args']['encoder_spec'], 'imnet_spec': {'name': 'mlp', 'args': {}}}
    liif = official_checkpoint(tmp_path, args=liif_args, file='liif.pth')
    assert _exit_code([str(liif), str(dst)]) == 2
    assert "decoder 'mlp' is not A-LIIF's 'mlp_pw': a LIIF checkpoint? use gaussiansr-convert-liif" in _error_line(
        capsys
    )

    sd = official_state()
    odd = official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert _exit_code([str(odd), str(dst)]) == 2
    assert "unexpected key(s) ['extra.weight']" in _error_line(capsys)

    short = official_checkpoint(tmp_path, {k: v for k, v in sd.items() if k != 'basis.bias3'}, file='short.pth')
    assert _exit_code([str(short), str(dst)]) == 2
    assert 'the bases do not fit: weights basis.w[0, 1, 2, 3, 4], biases basis.bias[1, 2, 4, 5]' in _error_line(capsys)

    no_pdn = official_checkpoint(tmp_path, {k: v for k, v in sd.items() if k != 'pdn.layers.2.weight'}, file='p.pth')
    assert _exit_code([str(no_pdn), str(dst)]) == 2
    assert 'expansion.2.weight' in _error_line(capsys)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    src, dst = official_checkpoint(tmp_path), tmp_path / 'out' / 'aliif.pth'
    assert convert_aliif.main([str(src), str(dst)]) == 0
    before = dst.read_bytes()
    capsys.readouterr()
    assert _exit_code([str(src), str(dst)]) == 2
    assert '--force' in _error_line(capsys) and dst.read_bytes() == before
    assert convert_aliif.main([str(src), str(dst), '--force']) == 0
    assert not [p.name for p in dst.parent.iterdir() if p.name != 'aliif.pth']  # no temporary file left
