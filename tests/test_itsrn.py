"""ITSRN: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/itsrn/`` holds a small official ITSRN's state dict (random weights) and its outputs
on five cases (``scripts/make_itsrn_fixtures.py`` wrote them from the official code): the state
dict is put in the official checkpoint layout, converted by ``gaussiansr-convert-itsrn`` and run
here on the same inputs, so these tests need neither the official code nor its weights.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import gaussiansr_arch
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.itsrn_arch import ITSRN
from gaussiansr_arch.tools import convert_itsrn
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'itsrn'
LTE_STATE = Path(__file__).resolve().parent / 'fixtures' / 'lte' / 'official_state.safetensors'
TOLERANCE = 1e-5


def _metadata(path: Path) -> dict:
    with safe_open(str(path), 'pt') as f:
        return f.metadata()


STATE_META = _metadata(FIXTURES / 'official_state.safetensors')
CASES = json.loads(_metadata(FIXTURES / 'cases.safetensors')['cases'])
OFFICIAL_NAMES = {'kernel_mlp.': 'imnet.layers.', 'score_mlp.': 'Score.layers.', 'ensemble_mlp.': 'Weight.layers.'}


def official_checkpoint(
    tmp_path: Path, sd: dict | None = None, name: str = 'ITNSR', file: str = 'official.pth', **args
) -> Path:
    """The fixture's state dict in the official checkpoint layout ``{'model': {name, args, sd}}``."""
    spec = json.loads(STATE_META['model'])
    sd = load_file(FIXTURES / 'official_state.safetensors') if sd is None else sd
    path = tmp_path / file
    torch.save({'model': {'name': name, 'args': {**spec['args'], **args}, 'sd': sd}, 'epoch': 1000}, path)
    return path


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp('itsrn')
    dst = tmp / 'ITSRN_official.pth'
    assert convert_itsrn.main([str(official_checkpoint(tmp)), str(dst)]) == 0
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
            image = net.upscale(lr, size=size, chunk_size=500).flatten(2).transpose(1, 2)
            diffs['upscale'] = max_diff(image, want)
    print(f'{case}: max |diff| ' + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_fixture_outputs_vary(cases):
    """The fixtures are not a constant image: the official model's output varies over the queries."""
    for case in CASES:
        assert cases[f'{case}.sr'].std().item() > 1e-2, case


def test_converted_file_records_network_g(converted):
    data = torch.load(converted, map_location='cpu', weights_only=True)
    assert data['network_g'] == {
        'type': 'ITSRN',
        'encoder': 'rdn',
        'encoder_opt': {'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 32},
        'hidden': [16, 16],
        'score_hidden': [256],
        'ensemble_hidden': [256],
    }
    assert data['source'] == {'file': 'official.pth', 'epoch': 1000}


def test_bare_weights_are_detected(converted, tmp_path, cases):
    """``load_model`` on the converted parameters alone (no network_g) builds the same ITSRN."""
    params = torch.load(converted, map_location='cpu', weights_only=True)['params']
    want = torch.load(converted, map_location='cpu', weights_only=True)['network_g']
    assert detect_network_opt(params) == want
    bare = tmp_path / 'bare.safetensors'
    save_weights(str(bare), params)
    net = gaussiansr_arch.load_model(str(bare))
    assert isinstance(net, ITSRN)
    case = 'x1.7_9x14'
    with torch.no_grad():
        out = net(cases[f'{case}.lr'], cases[f'{case}.coord'], cases[f'{case}.cell'])
    assert max_diff(out, cases[f'{case}.sr']) <= TOLERANCE


def test_edsr_encoder_of_liif_layout_converts(tmp_path):
    """An ITSRN trained on LIIF's EDSR-baseline (LIIF's layout: the LTE fixture's encoder) converts too."""
    enc = {k: v for k, v in load_file(LTE_STATE).items() if k.startswith('encoder.')}
    head = ITSRN(encoder_opt={'num_feat': 16, 'num_block': 2}, hidden=[16], score_hidden=[8], ensemble_hidden=[8])
    sd = dict(enc)
    for key, value in head.state_dict().items():
        prefix = next((p for p in OFFICIAL_NAMES if key.startswith(p)), None)
        if prefix is not None:
            sd[OFFICIAL_NAMES[prefix] + key[len(prefix) :]] = value
    src = official_checkpoint(tmp_path, sd, encoder_spec={'name': 'edsr-baseline', 'args': {'no_upsampling': True}})
    dst = tmp_path / 'edsr.pth'
    assert convert_itsrn.main([str(src), str(dst)]) == 0
    data = torch.load(dst, map_location='cpu', weights_only=True)
    assert data['network_g']['encoder'] == 'edsr-baseline'
    assert data['network_g']['encoder_opt'] == {'num_feat': 16, 'num_block': 2, 'res_scale': 1.0}
    assert torch.equal(data['params']['score_mlp.0.weight'], head.score_mlp[0].weight)


# ---------------------------------------------------------------- converter command line
def _exit_code(argv) -> int:
    with pytest.raises(SystemExit) as info:
        convert_itsrn.main(argv)
    return info.value.code


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('gaussiansr-convert-itsrn: error:')
    return err


def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'itsrn.pth'
    assert _exit_code([str(tmp_path / 'missing.pth'), str(dst)]) == 2
    assert 'does not exist' in _error_line(capsys)

    basicsr_file = tmp_path / 'basicsr.pth'
    torch.save({'params': {'conv.weight': torch.zeros(1)}}, basicsr_file)
    assert _exit_code([str(basicsr_file), str(dst)]) == 2
    assert 'not an official ITSRN checkpoint' in _error_line(capsys)

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    assert _exit_code([str(garbage), str(dst)]) == 2
    assert 'cannot be loaded' in _error_line(capsys)

    liif = official_checkpoint(tmp_path, name='liif', file='liif.pth')
    assert _exit_code([str(liif), str(dst)]) == 2
    assert "model 'liif' is not supported (supported: 'ITNSR')" in _error_line(capsys)

    no_ensemble = official_checkpoint(tmp_path, file='ne.pth', local_ensemble=False)
    assert _exit_code([str(no_ensemble), str(dst)]) == 2
    assert 'local_ensemble off is not supported' in _error_line(capsys)

    embedding = official_checkpoint(tmp_path, file='emb.pth', embedding_coord={'name': 'mlp'})
    assert _exit_code([str(embedding), str(dst)]) == 2
    assert 'embedding_coord is not supported' in _error_line(capsys)

    swinir = official_checkpoint(tmp_path, file='swinir.pth', encoder_spec={'name': 'swinir'})
    assert _exit_code([str(swinir), str(dst)]) == 2
    assert "encoder 'swinir' is not supported" in _error_line(capsys)

    sd = load_file(FIXTURES / 'official_state.safetensors')
    odd = official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert _exit_code([str(odd), str(dst)]) == 2
    assert "unexpected key(s) ['extra.weight']" in _error_line(capsys)

    upnet = official_checkpoint(tmp_path, {**sd, 'encoder.UPNet.0.weight': torch.zeros(1)}, file='up.pth')
    assert _exit_code([str(upnet), str(dst)]) == 2
    assert "unexpected RDN encoder key(s) ['UPNet.0.weight']" in _error_line(capsys)

    no_score = {k: v for k, v in sd.items() if not k.startswith('Score.')}
    assert _exit_code([str(official_checkpoint(tmp_path, no_score, file='ns.pth')), str(dst)]) == 2
    assert 'no Score.layers.* MLP' in _error_line(capsys)

    short = {k: v for k, v in sd.items() if k != 'Weight.layers.0.bias'}
    assert _exit_code([str(official_checkpoint(tmp_path, short, file='short.pth')), str(dst)]) == 2
    assert 'ensemble_mlp.0.bias' in _error_line(capsys)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    src, dst = official_checkpoint(tmp_path), tmp_path / 'out' / 'itsrn.pth'
    assert convert_itsrn.main([str(src), str(dst)]) == 0
    before = dst.read_bytes()
    capsys.readouterr()
    assert _exit_code([str(src), str(dst)]) == 2
    assert '--force' in _error_line(capsys) and dst.read_bytes() == before
    assert convert_itsrn.main([str(src), str(dst), '--force']) == 0
    assert not [p.name for p in dst.parent.iterdir() if p.name != 'itsrn.pth']  # no temporary file left
