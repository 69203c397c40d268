"""A-LIIF: parity with the official code through golden fixtures, the converter, detection.

``tests/fixtures/aliif/`` holds a small official A-LIIF's state dict (random weights, float16
values) and its outputs on four cases (``scripts/make_aliif_fixtures.py`` wrote them from the
official code): the state dict is put in the official checkpoint layout, converted by
``gaussiansr-convert-aliif`` and run here on the same inputs, so these tests need neither the
official code nor its weights.
"""

import pytest
import torch

import gaussiansr_arch
from gaussiansr_arch.archs.aliif_arch import ALIIF
from gaussiansr_arch.archs.liif_arch import LIIF, MetaSR
from gaussiansr_arch.tools import convert_aliif
from gaussiansr_arch.utils.arch_detect import detect_network_opt
from gaussiansr_arch.utils.weights import save_weights

from golden_fixtures import ConverterCli, GoldenFixture, max_diff, module_fixtures, parity_diffs

# float32: the official state is stored as float16, the values the official model ran with
FIXTURE = GoldenFixture('aliif', float32=True)
CASES = FIXTURE.case_sizes
CLI = ConverterCli(convert_aliif, 'gaussiansr-convert-aliif', 'A-LIIF')
TOLERANCE = 1e-5
NETWORK_OPT = {
    'encoder': 'edsr-baseline',
    'num_basis': 3,
    'hidden': [16, 16, 16, 16],
    'expansion_hidden': [16, 16],
}


converted, cases = module_fixtures(FIXTURE, convert_aliif, 'ALIIF_official.pth')


@pytest.mark.parametrize('case', list(CASES))
def test_parity_with_official_outputs(case, converted, cases):
    """Our query on the official queries, and (whole images) our upscale, equal the official output."""
    net = gaussiansr_arch.load_model(str(converted))
    diffs = parity_diffs(net, case, cases, CASES[case], chunk_size=100)
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
def test_converter_errors(tmp_path, capsys):
    """User errors: one line on stderr, exit status 2, no output written."""
    dst = tmp_path / 'aliif.pth'
    CLI.check_input_errors(tmp_path, capsys, dst)
    liif_args = {'encoder_spec': FIXTURE.spec['args']['encoder_spec'], 'imnet_spec': {'name': 'mlp', 'args': {}}}
    liif = FIXTURE.official_checkpoint(tmp_path, args=liif_args, file='liif.pth')
    assert "decoder 'mlp' is not A-LIIF's 'mlp_pw': a LIIF checkpoint? use gaussiansr-convert-liif" in CLI.fails(
        capsys, liif, dst
    )
    sd = FIXTURE.state()
    odd = FIXTURE.official_checkpoint(tmp_path, {**sd, 'extra.weight': torch.zeros(1)}, file='odd.pth')
    assert "unexpected key(s) ['extra.weight']" in CLI.fails(capsys, odd, dst)
    short = FIXTURE.official_checkpoint(tmp_path, {k: v for k, v in sd.items() if k != 'basis.bias3'}, file='s.pth')
    want = 'the bases do not fit: weights basis.w[0, 1, 2, 3, 4], biases basis.bias[1, 2, 4, 5]'
    assert want in CLI.fails(capsys, short, dst)
    no_pdn = FIXTURE.official_checkpoint(
        tmp_path, {k: v for k, v in sd.items() if k != 'pdn.layers.2.weight'}, file='p.pth'
    )
    assert 'expansion.2.weight' in CLI.fails(capsys, no_pdn, dst)
    assert not dst.exists()


def test_converter_force(tmp_path, capsys):
    CLI.check_force(capsys, FIXTURE.official_checkpoint(tmp_path), tmp_path / 'out' / 'aliif.pth')
