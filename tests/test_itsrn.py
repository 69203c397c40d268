"""ITSRN: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/itsrn/`` holds a small official ITSRN's state dict (random weights) and its outputs
on five cases (``scripts/make_itsrn_fixtures.py`` wrote them from the official code): the state
dict is put in the official checkpoint layout, converted by ``gaussiansr-convert-itsrn`` and run
here on the same inputs, so these tests need neither the official code nor its weights.
"""

import pytest
import torch
from safetensors.torch import load_file

import gaussiansr_arch
from gaussiansr_arch.archs.itsrn_arch import ITSRN
from gaussiansr_arch.tools import convert_itsrn
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

from golden_fixtures import FIXTURES, ConverterCli, GoldenFixture, max_diff, module_fixtures, parity_diffs

FIXTURE = GoldenFixture('itsrn')
CASES = FIXTURE.case_sizes
CLI = ConverterCli(convert_itsrn, 'gaussiansr-convert-itsrn', 'ITSRN')
LTE_STATE = FIXTURES / 'lte' / 'official_state.safetensors'
TOLERANCE = 1e-5
OFFICIAL_NAMES = {'kernel_mlp.': 'imnet.layers.', 'score_mlp.': 'Score.layers.', 'ensemble_mlp.': 'Weight.layers.'}


converted, cases = module_fixtures(FIXTURE, convert_itsrn, 'ITSRN_official.pth')


@pytest.mark.parametrize('case', list(CASES))
def test_parity_with_official_outputs(case, converted, cases):
    """Our query on the official queries, and (whole images) our upscale, equal the official output."""
    net = gaussiansr_arch.load_model(str(converted))
    diffs = parity_diffs(net, case, cases, CASES[case])
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
    src = FIXTURE.official_checkpoint(
        tmp_path, sd, encoder_spec={'name': 'edsr-baseline', 'args': {'no_upsampling': True}}
    )
    dst = tmp_path / 'edsr.pth'
    assert convert_itsrn.main([str(src), str(dst)]) == 0
    data = torch.load(dst, map_location='cpu', weights_only=True)
    assert data['network_g']['encoder'] == 'edsr-baseline'
    assert data['network_g']['encoder_opt'] == {'num_feat': 16, 'num_block': 2, 'res_scale': 1.0}
    assert torch.equal(data['params']['score_mlp.0.weight'], head.score_mlp[0].weight)


# ---------------------------------------------------------------- converter command line
def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'itsrn.pth'
    CLI.check_input_errors(tmp_path, capsys, dst)
    liif = FIXTURE.official_checkpoint(tmp_path, name='liif', file='liif.pth')
    assert "model 'liif' is not supported (supported: 'ITNSR')" in CLI.fails(capsys, liif, dst)
    no_ensemble = FIXTURE.official_checkpoint(tmp_path, file='ne.pth', local_ensemble=False)
    assert 'local_ensemble off is not supported' in CLI.fails(capsys, no_ensemble, dst)
    embedding = FIXTURE.official_checkpoint(tmp_path, file='emb.pth', embedding_coord={'name': 'mlp'})
    assert 'embedding_coord is not supported' in CLI.fails(capsys, embedding, dst)
    swinir = FIXTURE.official_checkpoint(tmp_path, file='swinir.pth', encoder_spec={'name': 'swinir'})
    assert "encoder 'swinir' is not supported" in CLI.fails(capsys, swinir, dst)

    sd = FIXTURE.state()
    odd = FIXTURE.official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert "unexpected key(s) ['extra.weight']" in CLI.fails(capsys, odd, dst)
    upnet = FIXTURE.official_checkpoint(tmp_path, {**sd, 'encoder.UPNet.0.weight': torch.zeros(1)}, file='up.pth')
    assert "unexpected RDN encoder key(s) ['UPNet.0.weight']" in CLI.fails(capsys, upnet, dst)
    no_score = FIXTURE.official_checkpoint(
        tmp_path, {k: v for k, v in sd.items() if not k.startswith('Score.')}, file='ns.pth'
    )
    assert 'no Score.layers.* MLP' in CLI.fails(capsys, no_score, dst)
    short = FIXTURE.official_checkpoint(
        tmp_path, {k: v for k, v in sd.items() if k != 'Weight.layers.0.bias'}, file='s.pth'
    )
    assert 'ensemble_mlp.0.bias' in CLI.fails(capsys, short, dst)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    CLI.check_force(capsys, FIXTURE.official_checkpoint(tmp_path), tmp_path / 'out' / 'itsrn.pth')
