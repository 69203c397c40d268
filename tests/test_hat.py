"""HAT encoder: parity with the official HAT body (golden fixtures), detection, and the converters' HAT layouts.

The fixtures (``tests/fixtures/hat/``) hold a small official HAT's state dict and its body features
on three inputs (12x12 batch 2, 10x14 and 9x17: the last two need window padding), written by
``scripts/make_hat_fixtures.py`` from the official code (XPixelGroup/HAT, Apache-2.0); the tests need
no official code. The converter tests save tiny ContinuousSR-with-HAT and GSASR-with-HAT models in
the official layouts (ContinuousSR's ``models/hat.py`` encoder; GSASR's ``HATNOUP``) and convert them.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from test_continuoussr import official_layout as continuoussr_official_layout
from test_gsasr import official_layout as gsasr_official_layout

import gaussiansr_arch
from gaussiansr_arch.archs.continuoussr_arch import ContinuousSR
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.gsasr_arch import GSASR
from gaussiansr_arch.archs.hat_encoder import HATEncoder, shifted_window_mask
from gaussiansr_arch.tools import convert_continuoussr, convert_gsasr
from gaussiansr_arch.utils.arch_detect import detect_encoder, detect_network_opt

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'hat'
TOLERANCE = 1e-5
# Official HAT constructor options -> ours (the rest: upscale, img_range, upsampler, in_chans, are the head's).
OPTION_NAMES = (
    'embed_dim',
    'depths',
    'num_heads',
    'window_size',
    'compress_ratio',
    'squeeze_factor',
    'conv_scale',
    'overlap_ratio',
    'mlp_ratio',
    'resi_connection',
    'img_size',
    'drop_path_rate',
)
TINY_HAT = {
    'embed_dim': 12,
    'depths': [2],
    'num_heads': [2],
    'window_size': 4,
    'compress_ratio': 3,
    'squeeze_factor': 4,
    'img_size': 8,
}


def fixture_config() -> dict:
    with safe_open(FIXTURES / 'official_state.safetensors', 'pt') as f:
        return json.loads(f.metadata()['config'])


def fixture_cases() -> tuple[dict, list[str], str]:
    cases = load_file(FIXTURES / 'cases.safetensors')
    with safe_open(FIXTURES / 'cases.safetensors', 'pt') as f:
        meta = f.metadata()
    return cases, json.loads(meta['cases']), meta['head_case']


def our_encoder(official_state: dict, config: dict, head: bool) -> HATEncoder:
    """Our encoder holding the official weights (same names: the mapping is the identity)."""
    opt = {k: config[k] for k in OPTION_NAMES}
    state = dict(official_state)
    if head:
        opt['out_feat'] = int(state['conv_before_upsample.0.weight'].shape[0])
    else:
        state = {k: v for k, v in state.items() if not k.startswith('conv_before_upsample.')}
    enc = HATEncoder(**opt).eval()
    enc.load_state_dict(state, strict=True)
    return enc


def test_body_features_equal_the_official_hat():
    official = load_file(FIXTURES / 'official_state.safetensors')
    config = fixture_config()
    cases, names, head_case = fixture_cases()
    body, head = our_encoder(official, config, head=False), our_encoder(official, config, head=True)
    diffs = {}
    with torch.no_grad():
        for name in names:
            lr = cases[f'{name}.lr']
            got = body(lr)
            assert got.shape == cases[f'{name}.body'].shape
            diffs[name] = (got - cases[f'{name}.body']).abs().max().item()
        got = head(cases[f'{head_case}.lr'])
        diffs[f'{head_case} + conv_before_upsample'] = (got - cases[f'{head_case}.head']).abs().max().item()
    print('HAT parity, max |ours - official|:', {k: f'{v:.2e}' for k, v in diffs.items()})
    assert all(v <= TOLERANCE for v in diffs.values()), diffs
    # our position indices are the official buffers (the parity run loaded the official ones)
    fresh = HATEncoder(**{k: config[k] for k in OPTION_NAMES})
    for key in ('relative_position_index_SA', 'relative_position_index_OCA'):
        assert torch.equal(fresh.state_dict()[key], official[key]), key
    # the features are not trivially small: a tolerance of 1e-5 means something
    assert all(cases[f'{n}.body'].abs().max() > 0.5 for n in names)


def test_detection_reads_the_official_options():
    official = load_file(FIXTURES / 'official_state.safetensors')
    config = fixture_config()
    name, opt, channels = detect_encoder(official)
    assert name == 'hat' and channels == 64
    assert opt == {
        **{k: config[k] for k in ('embed_dim', 'depths', 'num_heads', 'window_size', 'compress_ratio')},
        'squeeze_factor': config['squeeze_factor'],
        'overlap_ratio': config['overlap_ratio'],
        'mlp_ratio': config['mlp_ratio'],
        'resi_connection': '1conv',
        'out_feat': 64,
    }
    body = {k: v for k, v in official.items() if not k.startswith('conv_before_upsample.')}
    assert detect_encoder(body)[0::2] == ('hat', config['embed_dim'])


def test_hat_l_options_build():
    """GSASR's HAT-L (embed 192, 12 x 6 blocks, window 16, squeeze 32, its 64-channel head) builds."""
    enc = build_encoder(
        'hat',
        embed_dim=192,
        depths=[6] * 12,
        num_heads=[6] * 12,
        window_size=16,
        squeeze_factor=32,
        out_feat=64,
    )
    assert enc.out_channels == 64
    assert sum(p.numel() for p in enc.parameters()) > 40_000_000
    detected = detect_encoder({k: v for k, v in enc.state_dict().items()})
    assert detected[0] == 'hat' and detected[1]['embed_dim'] == 192 and detected[1]['squeeze_factor'] == 32


def test_shapes_small_inputs_and_gradients():
    enc = build_encoder('hat', **TINY_HAT)
    for size in ((3, 5), (4, 4), (7, 9)):
        assert enc(torch.rand(2, 3, *size)).shape == (2, 12, *size)
    enc.train()
    enc(torch.rand(1, 3, 6, 10)).square().mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not missing
    with pytest.raises(ValueError, match='img_size'):
        build_encoder('hat', window_size=8, img_size=8)


def test_shifted_window_mask_separates_regions():
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()  # a window away from the wrap-around edges
    assert (mask[3] != 0).any() and (mask[3].diagonal() == 0).all()


# ----------------------------------------------------------------------------- converters
def test_continuoussr_converter_accepts_hat(tmp_path):
    net = ContinuousSR(**{**th_tiny_continuoussr(), 'encoder': 'hat', 'encoder_opt': TINY_HAT}).eval()
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(continuoussr_official_layout(net, 'hat'), src)
    assert convert_continuoussr.main([str(src), str(dst)]) == 0
    data = torch.load(dst, weights_only=True)
    assert data['network_g']['encoder'] == 'hat'
    opt = data['network_g']['encoder_opt']
    assert {k: opt[k] for k in ('embed_dim', 'depths', 'num_heads', 'window_size', 'squeeze_factor')} == {
        'embed_dim': 12,
        'depths': [2],
        'num_heads': [2],
        'window_size': 4,
        'squeeze_factor': 4,
    }
    loaded = gaussiansr_arch.load_model(str(dst))
    assert isinstance(loaded.encoder, HATEncoder)
    lq = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        want = net.upscale(lq, size=(15, 20))
        assert torch.equal(loaded.upscale(lq, size=(15, 20)), want)
        assert detect_network_opt(net.state_dict())['encoder'] == 'hat'


def th_tiny_continuoussr() -> dict:
    from gaussiansr_arch.utils.methods import get_method

    return {k: v for k, v in get_method('ContinuousSR').tiny.items() if k != 'encoder_opt'}


def test_gsasr_converter_accepts_hatnoup(tmp_path):
    from test_gsasr import TINY as GSASR_TINY

    # the encoder holds the fixture's official HAT weights (with its conv_before_upsample): HATNOUP's names
    official = load_file(FIXTURES / 'official_state.safetensors')
    config = fixture_config()
    hat_opt = {k: config[k] for k in OPTION_NAMES if k != 'drop_path_rate'} | {'out_feat': 64}
    net = GSASR(**{**GSASR_TINY, 'encoder': 'hat', 'encoder_opt': hat_opt, 'window_size': 4}).eval()
    net.encoder.load_state_dict(official, strict=True)
    encoder, head = gsasr_official_layout(net, torch.Generator().manual_seed(0))
    assert all(torch.equal(encoder[k], v) for k, v in official.items()) and set(encoder) == set(official)
    torch.save({'params_ema': encoder}, tmp_path / 'net_g.pth')
    torch.save({'params_ema': head}, tmp_path / 'net_fea2gs.pth')
    dst = tmp_path / 'gsasr.safetensors'
    network_g = convert_gsasr.run([str(tmp_path / 'net_g.pth'), str(tmp_path / 'net_fea2gs.pth'), str(dst)])
    detected = dict(network_g['encoder_opt'])
    assert network_g['encoder'] == 'hat' and detected.pop('conv_scale', None) is None
    assert detected == {k: v for k, v in hat_opt.items() if k not in ('conv_scale', 'img_size')}
    loaded = gaussiansr_arch.load_model(str(dst))
    assert isinstance(loaded.encoder, HATEncoder)
    lq = torch.rand(1, 3, 6, 7)
    for block in (m for m in loaded.encoder.modules() if hasattr(m, 'conv_scale')):
        block.conv_scale = config['conv_scale']  # not in the weights (detection gives HAT's 0.01)
    with torch.no_grad():
        assert torch.equal(loaded.upscale(lq, scale=2.5), net.upscale(lq, scale=2.5))


def test_gsasr_converter_converts_the_rope_variant(tmp_path):
    """HATNOUP_ROPE_AMP + Fea2GS_ROPE_AMP (the HAT-L release) convert; parity: tests/test_gsasr_rope.py."""
    from test_gsasr import TINY as GSASR_TINY

    hat = {**TINY_HAT, 'embed_dim': 8, 'out_feat': 8, 'rope': True}  # RoPE: head dims divisible by 4
    net = GSASR(**{**GSASR_TINY, 'encoder': 'hat', 'encoder_opt': hat, 'channels': 8, 'rope': True}).eval()
    encoder, head = gsasr_official_layout(net, torch.Generator().manual_seed(0))
    assert any(k.endswith('rope_freqs') for k in encoder) and 'conv_final.weight' in head
    # the official RoPE HAT still holds the relative-position indices it never reads
    encoder |= {name: torch.zeros(1, dtype=torch.long) for name in convert_gsasr._ROPE_HAT_UNUSED}
    torch.save({'params': encoder}, tmp_path / 'g.pth')
    torch.save({'params': head}, tmp_path / 'h.pth')
    network_g = convert_gsasr.run([str(tmp_path / 'g.pth'), str(tmp_path / 'h.pth'), str(tmp_path / 'o.pth')])
    assert network_g['encoder_opt']['rope'] is True and network_g['rope'] is True
    loaded = gaussiansr_arch.load_model(str(tmp_path / 'o.pth'))
    lq = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        assert torch.equal(loaded.upscale(lq, scale=2.5), net.upscale(lq, scale=2.5))


def test_onnx_export_is_refused_with_one_line():
    from gaussiansr_arch.tools.common import ToolError
    from gaussiansr_arch.tools.export_onnx import check_exportable

    net = ContinuousSR(**{**th_tiny_continuoussr(), 'encoder': 'hat', 'encoder_opt': TINY_HAT})
    with pytest.raises(ToolError, match="the 'hat' encoder pads to its window size"):
        check_exportable(net, {'type': 'ContinuousSR'})
