"""LTE: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/lte/`` holds a small official LTE's state dict (random weights) and its outputs on
five cases (``scripts/make_lte_fixtures.py`` wrote them from the official code): the state dict is
put in the official checkpoint layout, converted by ``gaussiansr-convert-lte`` and run here on the
same inputs, so these tests need neither the official code nor its weights.
"""

import pytest
import torch

import gaussiansr_arch
from gaussiansr_arch.archs.lte_arch import LTE
from gaussiansr_arch.tools import convert_lte
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

from golden_fixtures import ConverterCli, GoldenFixture, max_diff, module_fixtures, parity_diffs

FIXTURE = GoldenFixture('lte')
CASES = FIXTURE.case_sizes
CLI = ConverterCli(convert_lte, 'gaussiansr-convert-lte', 'LTE')
TOLERANCE = 1e-5


converted, cases = module_fixtures(FIXTURE, convert_lte, 'LTE_official.pth')


@pytest.mark.parametrize('case', list(CASES))
def test_parity_with_official_outputs(case, converted, cases):
    """Our query on the official queries, and (whole images) our upscale, equal the official output."""
    net = gaussiansr_arch.load_model(str(converted))
    if f'{case}.sr_cell_clip' not in cases:
        diffs = parity_diffs(net, case, cases, CASES[case])
    else:  # beyond x4: the official forward (no clip) and the official evaluation (cell clip)
        net.scale_max = None
        diffs = {'query': parity_diffs(net, case, cases, None)['query']}
        net.scale_max = 4.0
        clipped = parity_diffs(net, case, cases, CASES[case], want=cases[f'{case}.sr_cell_clip'])
        diffs.update({f'{k}, cell clip': v for k, v in clipped.items()})
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
def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'lte.pth'
    CLI.check_input_errors(tmp_path, capsys, dst)
    liif = FIXTURE.official_checkpoint(tmp_path, name='liif', file='liif.pth')
    assert "model 'liif' is not supported (supported: 'lte')" in CLI.fails(capsys, liif, dst)
    sd = FIXTURE.state()
    odd = FIXTURE.official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert "unexpected key(s) ['extra.weight']" in CLI.fails(capsys, odd, dst)
    short = {k: v for k, v in sd.items() if k != 'phase.weight'}
    missing_key = FIXTURE.official_checkpoint(tmp_path, short, file='short.pth')
    assert 'estimator.phase.weight' in CLI.fails(capsys, missing_key, dst)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    CLI.check_force(capsys, FIXTURE.official_checkpoint(tmp_path), tmp_path / 'out' / 'lte.pth')
