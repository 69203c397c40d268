"""GSASR's RoPE networks (the released HAT-L model): parity with the official modules, conversion, detection.

The fixtures (``tests/fixtures/gsasr_rope/``) hold small official ``HATNOUP_ROPE_AMP`` and
``Fea2GS_ROPE_AMP`` state dicts with random weights, their inputs and outputs (encoder features;
the head's raw Gaussian parameters before the official mean transform), written by
``scripts/make_gsasr_rope_fixtures.py`` from the official code (ChrisDud0257/GSASR 9d2eb64,
Apache-2.0); the tests need no official code. Run with ``-s`` to see the measured differences.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import gaussiansr_arch
from gaussiansr_arch.archs.gsasr_arch import GSASR
from gaussiansr_arch.archs.gsasr_head import GaussianHead, RawGaussians
from gaussiansr_arch.archs.hat_encoder import HATEncoder
from gaussiansr_arch.archs.rope import raster_positions, rotate, rotations
from gaussiansr_arch.tools import convert_gsasr
from gaussiansr_arch.utils.arch_detect import detect_network_opt

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'gsasr_rope'
TOLERANCE = 1e-5
# Official HATNOUP_ROPE_AMP options that are ours under the same name.
HAT_OPTIONS = (
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


def fixture(name: str) -> tuple[dict, dict, dict]:
    """(official state dict, other tensors, config) of ``<name>.safetensors``."""
    path = FIXTURES / f'{name}.safetensors'
    tensors = load_file(path)
    with safe_open(path, 'pt') as f:
        config = json.loads(f.metadata()['config'])
    state = {k[len('state.') :]: v for k, v in tensors.items() if k.startswith('state.')}
    return state, {k: v for k, v in tensors.items() if not k.startswith('state.')}, config


def head_options(config: dict) -> dict:
    """Our GaussianHead's options for official Fea2GS_ROPE_AMP ones."""
    return {
        'in_channels': config['inchannel'],
        'channels': config['channel'],
        'num_heads': config['num_heads'],
        'injection_blocks': config['num_crossattn_blocks'],
        'injection_layers': config['num_crossattn_layers'],
        'interaction_blocks': config['num_selfattn_blocks'],
        'interaction_layers': config['num_selfattn_layers'],
        'num_seeds': config['num_gs_seed'],
        'window_size': config['window_size'],
        'shuffle_scales': (config.get('shuffle_scale1', 2), config.get('shuffle_scale2', 2)),
        'rope': True,
    }


def official_order(raw: RawGaussians) -> torch.Tensor:
    """Our raw outputs [B, Hg, Wg, 9] in the official heads' order (offset as (x, y))."""
    return torch.cat([raw.sigma, raw.rho[..., None], raw.opacity[..., None], raw.colour, raw.offset.flip(-1)], -1)


def report(what: str, diff: float) -> None:
    print(f'\n{what}: max |ours - official| = {diff:.2e}')


def test_rotation_pairs_consecutive_channels_and_keeps_dot_products_relative():
    freqs = torch.randn(2, 1, 2)
    x, y = raster_positions(3)
    rotation = rotations(freqs, x, y)  # [1, 9, 2]
    q, k = torch.randn(1, 1, 9, 4), torch.randn(1, 1, 9, 4)
    rq, rk = rotate(q, rotation), rotate(k, rotation)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-6)
    angle = freqs[0, 0, 0] * x[4] + freqs[1, 0, 0] * y[4]  # token 4 = (1, 1), first channel pair
    c, s = torch.cos(angle), torch.sin(angle)
    assert torch.allclose(
        rq[0, 0, 4, :2], torch.stack([c * q[0, 0, 4, 0] - s * q[0, 0, 4, 1], s * q[0, 0, 4, 0] + c * q[0, 0, 4, 1]])
    )
    # the same shift of both positions leaves q . k unchanged: tokens (0, 0)->(1, 1) and (1, 0)->(2, 1)
    assert torch.allclose(
        (rq[..., 0, :] * rk[..., 1, :]).sum(),
        (
            (rotate(q[..., [0], :].expand(1, 1, 9, 4), rotation)[..., 4, :])
            * rotate(k[..., [1], :].expand(1, 1, 9, 4), rotation)[..., 5, :]
        ).sum(),
        atol=1e-5,
    )


def test_encoder_features_equal_the_official_hatnoup_rope():
    official, tensors, config = fixture('encoder')
    enc = HATEncoder(**{k: config[k] for k in HAT_OPTIONS}, out_feat=64, rope=True).eval()
    unused = set(convert_gsasr._ROPE_HAT_UNUSED)
    enc.load_state_dict({k: v for k, v in official.items() if k not in unused}, strict=True)
    assert unused <= set(official)
    with torch.no_grad():
        for case in json.loads(safe_open(FIXTURES / 'encoder.safetensors', 'pt').metadata()['cases']):
            want = tensors[f'{case}.feat']
            diff = (enc(tensors[f'{case}.lr']) - want).abs().max().item()
            report(f'HATNOUP_ROPE_AMP {case} (features up to {want.abs().max():.1f})', diff)
            assert diff <= TOLERANCE


@pytest.mark.parametrize('name', ['a', 'b'])
def test_head_raw_gaussians_equal_the_official_fea2gs_rope(name):
    official, tensors, config = fixture(f'head_{name}')
    head = GaussianHead(**head_options(config)).eval()
    converted = convert_gsasr.convert_head(official)
    head.load_state_dict({k[len('head.') :]: v for k, v in converted.items()}, strict=True)
    with torch.no_grad():
        got = official_order(head(tensors['feat'], tensors['scale']))
    diff = (got - tensors['raw']).abs().max().item()
    report(f'Fea2GS_ROPE_AMP {name} (outputs up to {tensors["raw"].abs().max():.1f})', diff)
    assert got.shape == tensors['raw'].shape and diff <= TOLERANCE


def test_converter_converts_the_official_rope_files_and_load_model_detects_them(tmp_path):
    """HATNOUP_ROPE_AMP + Fea2GS_ROPE_AMP files -> one file; loaded by detection, the official outputs end to end."""
    encoder, enc_tensors, enc_config = fixture('encoder')
    head, tensors, config = fixture('head_a')
    torch.save({'params_ema': encoder}, tmp_path / 'net_g.pth')
    torch.save({'params_ema': head}, tmp_path / 'net_fea2gs.pth')
    dst = tmp_path / 'gsasr_hatl.safetensors'
    network_g = convert_gsasr.run([str(tmp_path / 'net_g.pth'), str(tmp_path / 'net_fea2gs.pth'), str(dst)])
    hat = {k: enc_config[k] for k in HAT_OPTIONS if k not in ('conv_scale', 'img_size', 'drop_path_rate')}
    # the CAB's hidden channels, embed_dim // compress_ratio = 8 // 3 = 2, read back as the ratio 8 // 2 = 4
    hat['compress_ratio'] = hat['embed_dim'] // (hat['embed_dim'] // hat['compress_ratio'])
    options = head_options(config)
    assert network_g == {
        'type': 'GSASR',
        'encoder': 'hat',
        'encoder_opt': {**hat, 'out_feat': 64, 'rope': True},
        **{k: v for k, v in options.items() if k not in ('in_channels', 'shuffle_scales')},
        'shuffle_scales': list(options['shuffle_scales']),
    }
    net = gaussiansr_arch.load_model(str(dst))
    assert isinstance(net, GSASR) and net.encoder.rope and net.head.channels == config['channel']
    assert detect_network_opt(net.state_dict()) == network_g  # a bare state dict: the same options
    for block in (m for m in net.encoder.modules() if hasattr(m, 'conv_scale')):
        block.conv_scale = enc_config['conv_scale']  # not in the weights (detection gives HAT's 0.01)
    with torch.no_grad():
        feat = net.encoder(net.encoder_input(tensors['lr']))
        assert (feat - tensors['feat']).abs().max().item() <= TOLERANCE
        got = official_order(net.head(feat, tensors['scale']))
        diff = (got - tensors['raw']).abs().max().item()
        report('HATNOUP_ROPE_AMP + Fea2GS_ROPE_AMP end to end, 5x7 x2.5', diff)
        assert diff <= TOLERANCE
        assert net.upscale(tensors['lr'], scale=2.5).shape == (1, 3, 12, 18)


def test_rope_options_build_train_and_reject_odd_head_dims():
    net = GSASR(
        encoder='hat',
        encoder_opt={'embed_dim': 8, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'squeeze_factor': 4,
                     'img_size': 8, 'out_feat': 8, 'rope': True},
        channels=8, num_heads=2, injection_layers=2, interaction_blocks=1, interaction_layers=2,
        num_seeds=16, window_size=4, rope=True,
    )  # fmt: skip
    names = [n for n, _ in net.named_parameters()]
    assert not any('relative_position' in n for n in names) and 'head.conv_final.weight' in names
    coord = torch.rand(1, 20, 2) * 2 - 1
    net(torch.rand(1, 3, 6, 6), coord, torch.full((1, 20, 2), 2 / 15)).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match='divisible by 4'):
        GaussianHead(8, channels=12, num_heads=2, rope=True)
    with pytest.raises(TypeError, match='divisible by 4'):
        HATEncoder(embed_dim=12, depths=[2], num_heads=[2], window_size=4, squeeze_factor=4, img_size=8, rope=True)
