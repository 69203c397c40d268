"""GSASR: the arch, its head, the converter, training, and parity with the official networks.

Parity (needs ``../shared/reference/gsasr`` and einops; skips cleanly without them): the official
``EDSRNOUP`` and ``Fea2GS`` are built from the reference files with random weights (loaded into a
private registry, so BasicSR's stays untouched), saved as official-format files, converted by
``gaussiansr-convert-gsasr``, and our ``upscale`` is compared with the official ``test()`` path:
reflect padding, the official networks, then the formula of the official CUDA kernel (``gs.cu``)
after ``rendering_cuda_new``'s transforms, evaluated by the brute-force reference below.
Run with ``-s`` to see the measured differences. About 40 s on 2 CPU cores, most of it the
paper-size check and the training run.
"""

import importlib.util
import math
import re
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import gaussiansr_arch
from gaussiansr_arch.archs import gsasr_head
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.gsasr_arch import GSASR, gaussians_from_raw
from gaussiansr_arch.archs.gsasr_head import ScaleInjection, cross_position_index
from gaussiansr_arch.tools import convert_gsasr
from gaussiansr_arch.utils.arch_detect import detect_network_opt

import train_helpers as th

REPO_ROOT = Path(__file__).resolve().parents[1]
GSASR_REF = REPO_ROOT.parent / 'shared' / 'reference' / 'gsasr'
# Window 4 with 4x4 seeds: 16 Gaussians per LR pixel as the paper, shifted windows on both attentions.
TINY = {
    'encoder_opt': {'num_feat': 8, 'num_block': 1},
    'channels': 12,
    'num_heads': 2,
    'injection_blocks': 1,
    'injection_layers': 2,
    'interaction_blocks': 1,
    'interaction_layers': 2,
    'num_seeds': 16,
    'window_size': 4,
}
PARITY_TOLERANCE = 1e-4


def tiny(**changes) -> GSASR:
    torch.manual_seed(0)
    return GSASR(**{**TINY, **changes}).eval()


def full_grid(size, batch=1):
    coord = make_coord(size).unsqueeze(0).expand(batch, -1, -1)
    return coord, make_cell(size, coord.shape[1]).unsqueeze(0).expand(batch, -1, -1)


# ----------------------------------------------------------------------------- the arch
def test_default_is_the_paper_model():
    net = GSASR()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # official: EDSRNOUP 1,220,416 and Fea2GS 19,224,381, of which 38 x (2 x 180^2 + 2 x 180) query/key
    # weights and 38 x 2 x 180 LayerNorm weights of the scale attention do not affect the output
    assert count(net.encoder) == 1_220_416
    assert count(net.head) == 19_224_381 - 38 * (2 * 180 * 180 + 2 * 180 + 2 * 180) == 16_734_621
    assert net.encoder.long_skip is False and net.per_side == 4 and net.window_size == 12


def test_shapes_padding_and_gaussians():
    net = tiny()
    lq = torch.rand(2, 3, 10, 13)
    with torch.no_grad():
        state = net.encode(lq)
        assert state.feat.shape == (2, 8, 12, 16)  # padded to multiples of the window
        g = net.gaussians(state, [2.5, 3.0])
        assert g.colour.shape == (2, 12, 16, 16, 3) and g.offset.shape == (2, 12, 16, 16, 2)
        assert g.sigma.shape == (2, 12, 16, 16, 2) and g.rho.shape == g.opacity.shape == (2, 12, 16, 16)
        assert g.sigma.min() > 0 and g.sigma.max() <= 1 and g.rho.abs().max() < 1
        assert net.upscale(lq, scale=2.5).shape == (2, 3, 25, 32)
        coord, cell = full_grid((7, 9), 2)
        assert net(lq, coord, cell).shape == (2, 63, 3)
        assert net(lq, coord[:, :0], cell[:, :0]).shape == (2, 0, 3)
        assert net.upscale(torch.rand(1, 3, 3, 2), scale=2).shape == (1, 3, 6, 4)  # smaller than the padding


def test_sub_pixel_reference_points():
    """Without learned offsets the 16 Gaussians of a pixel sit on a 4x4 grid at (k + 0.5) / 4 - 0.5."""
    zeros = torch.zeros(1, 8, 4)  # a 2x1-pixel image's Gaussian grid
    raw = gsasr_head.RawGaussians(
        sigma=zeros[..., None].expand(1, 8, 4, 2),
        rho=zeros,
        opacity=zeros,
        colour=zeros[..., None].expand(1, 8, 4, 3),
        offset=zeros[..., None].expand(1, 8, 4, 2),
    )
    g = gaussians_from_raw(raw, 4)
    assert g.offset.shape == (1, 2, 1, 16, 2)
    steps = torch.tensor([-0.375, -0.125, 0.125, 0.375])
    assert torch.equal(g.offset[0, 0, 0, :, 0], steps.repeat_interleave(4))
    assert torch.equal(g.offset[0, 0, 0, :, 1], steps.repeat(4))


def test_non_isotropic_sizes_are_errors():
    net = tiny()
    lq = torch.rand(1, 3, 10, 13)
    with pytest.raises(ValueError, match=r'one factor: output 25x40 of a 10x13 input has H/h = 2\.5 but W/w = 3\.07'):
        net.upscale(lq, size=(25, 40))
    coord, cell = full_grid((25, 40))
    with pytest.raises(ValueError, match='one factor'):
        net(lq, coord, cell)
    cell = cell.clone()
    cell[0, 5] = 2 / 30
    with pytest.raises(ValueError, match='the same cell'):
        net(lq, coord, cell)
    assert net.upscale(lq, size=(25, 33)).shape == (1, 3, 25, 33)  # 2.5 x 13 = 32.5, rounded up
    # s = 3.45: round(10 s) = 34, round(28 s) = 97 columns, one more than the canvas's ceil(34 / 10 x 28) = 96
    wide = torch.rand(1, 3, 10, 28)
    assert net.upscale(wide, size=(34, 97)).shape == (1, 3, 34, 97)


def test_upscale_equals_forward_where_the_official_grid_is_the_output_grid():
    """s x padded size integer and H = s h: the official canvas pixels are the output's pixel centres."""
    net = tiny()
    lq = torch.rand(2, 3, 10, 13)  # padded 12x16, x4: canvas 48x64, output 40x52
    with torch.no_grad():
        image = net.upscale(lq, scale=4, chunk_size=300)
        coord, cell = full_grid((40, 52), 2)
        points = net(lq, coord, cell)
    assert (image.flatten(2).transpose(1, 2) - points).abs().max().item() <= 1e-5


def test_chunks_batches_and_several_sizes_from_one_encoding():
    net = tiny()
    lq = torch.rand(2, 3, 9, 11)
    calls = {'encoder': 0, 'head': 0}
    net.encoder.register_forward_hook(lambda *_: calls.__setitem__('encoder', calls['encoder'] + 1))
    net.head.register_forward_hook(lambda *_: calls.__setitem__('head', calls['head'] + 1))
    with torch.no_grad():
        many = net.upscale_many(lq, [(27, 33), (20, 24), (27, 33)], chunk_size=100)
        assert calls == {'encoder': 1, 'head': 2}  # the head once per scale
        alone = [net.upscale(lq, size=s, chunk_size=10**6) for s in [(27, 33), (20, 24)]]
        single = net.upscale(lq[1:], size=(27, 33))
    assert (many[0] - alone[0]).abs().max().item() <= 1e-5 and torch.equal(many[0], many[2])
    assert (many[1] - alone[1]).abs().max().item() <= 1e-5
    assert (many[0][1:] - single).abs().max().item() <= 1e-5


def test_strip_wise_head_equals_whole(monkeypatch):
    """At inference the upsampler and MLP heads run on strips of seed rows: same Gaussians."""
    net = tiny()
    feat, scale = torch.randn(2, 8, 12, 20), torch.tensor([2.0, 3.5])
    whole = net.head(feat, scale)  # gradients enabled: everything at once
    monkeypatch.setattr(gsasr_head, 'TAIL_SEEDS', 2 * 20)  # one seed row per strip
    monkeypatch.setattr(gsasr_head, 'HEAD_ROWS', 100)
    with torch.no_grad():
        strips = net.head(feat, scale)
    for name in ('sigma', 'rho', 'opacity', 'colour', 'offset'):
        assert (getattr(whole, name) - getattr(strips, name)).abs().max().item() <= 1e-5, name


def test_scale_injection_is_the_attention_to_the_scale_embedding():
    """Keys all equal the scale embedding: the official attention is out_proj(v_proj(embedding))."""
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    injection = ScaleInjection(12)
    with torch.no_grad():
        injection.value.weight.copy_(attention.in_proj_weight[24:])
        injection.value.bias.copy_(attention.in_proj_bias[24:])
        injection.out_proj.load_state_dict(attention.out_proj.state_dict())
        embedding = torch.randn(5, 12)
        keys = embedding[:, None].expand(5, 7, 12)
        want, _ = attention(torch.randn(5, 7, 12), keys, keys)
    assert (want - injection(embedding)[:, None]).abs().max().item() <= 1e-5


def test_cross_position_index_fits_its_table():
    for seeds_side, window in [(4, 4), (12, 12), (4, 8), (8, 4)]:
        index = cross_position_index(seeds_side, window)
        assert index.shape == (seeds_side**2, window**2)
        assert index.min() >= 0 and index.max() < (2 * max(seeds_side, window) - 1) ** 2


def test_gradients_reach_every_parameter():
    """Training through forward (one scale per image, from its cell): no unused parameter (DDP-safe)."""
    net = tiny().train()
    lq = torch.rand(2, 3, 8, 8)
    coord = torch.rand(2, 50, 2) * 2 - 1
    cell = torch.cat([torch.full((1, 50, 2), 2 / 12), torch.full((1, 50, 2), 2 / 27)])  # x1.5 and x3.375
    out = net(lq, coord, cell)
    assert out.shape == (2, 50, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert net.head.embedding.grad.abs().max() > 0 and net.head.scale_mlp[0].weight.grad.abs().max() > 0


# ----------------------------------------------------------------------------- converter (official layout)
def official_layout(net: GSASR, generator: torch.Generator) -> tuple[dict, dict]:
    """(EDSRNOUP, Fea2GS) state dicts holding ``net``'s weights under the official names, with random
    query/key rows and dead LayerNorms (which the converter must drop)."""
    encoder = {k[len('encoder.') :]: v for k, v in net.state_dict().items() if k.startswith('encoder.')}
    head = {}
    top = {v: k for k, v in convert_gsasr.HEAD_MODULES.items()}
    blocks = {
        ours: (official, {v: k for k, v in names.items()}) for official, (ours, names) in convert_gsasr.BLOCKS.items()
    }
    projections = {v: k for k, v in convert_gsasr.ATTENTION_PROJECTIONS.items()}
    for key, value in net.head.state_dict().items():
        parts = key.split('.')
        if parts[0] in blocks:
            official, names = blocks[parts[0]]
            if parts[2] != 'layers':
                head[f'{official}.{parts[1]}.' + '.'.join(parts[2:])] = value
                continue
            prefix = f'{official}.{parts[1]}.blocks.{parts[3]}.'
            if parts[4] == 'scale_injection':
                if parts[5] == 'value':
                    rows = torch.randn(2 * value.shape[0], *value.shape[1:], generator=generator)
                    head[prefix + f'gs_cross_attn_scale.in_proj_{parts[6]}'] = torch.cat([rows, value])
                else:
                    head[prefix + 'gs_cross_attn_scale.' + '.'.join(parts[5:])] = value
                continue
            tail = parts[5:]
            if parts[4] == 'attn' and tail[0] in projections:
                tail = [projections[tail[0]], *tail[1:]]
            head[prefix + names[parts[4]] + '.' + '.'.join(tail)] = value
        else:
            if key in ('offset_head.4.weight', 'offset_head.4.bias'):
                value = value.flip(0)
            head['.'.join([top[parts[0]], *parts[1:]])] = value
    layers = {m.group(1, 2) for k in head if (m := re.match(r'^(\w+\.\d+)\.blocks\.(\d+)\.', k))}
    for block, layer in sorted(layers):
        dead = convert_gsasr.DEAD_NORMS[block.split('.')[0]]
        for p in ('weight', 'bias'):
            head[f'{block}.blocks.{layer}.{dead}.{p}'] = torch.randn(net.head.channels, generator=generator)
    return encoder, head


def test_converter_round_trip_and_load_model(tmp_path):
    net = tiny(injection_blocks=1, interaction_blocks=2, interaction_layers=1, num_heads=3)
    generator = torch.Generator().manual_seed(1)
    encoder, head = official_layout(net, generator)
    noise = {k: torch.randn(v.shape, generator=generator) for k, v in head.items()}
    torch.save({'params': noise, 'params_ema': head}, tmp_path / 'net_fea2gs.pth')
    torch.save({'params_ema': encoder, 'params': encoder}, tmp_path / 'net_g.pth')
    dst = tmp_path / 'out' / 'gsasr.safetensors'
    network_g = convert_gsasr.run([str(tmp_path / 'net_g.pth'), str(tmp_path / 'net_fea2gs.pth'), str(dst)])
    assert network_g == {
        'type': 'GSASR',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 8, 'num_block': 1},
        **{k: v for k, v in TINY.items() if k != 'encoder_opt'},
        'num_heads': 3,
        'interaction_blocks': 2,
        'interaction_layers': 1,
        'shuffle_scales': [2, 2],
    }
    loaded = gaussiansr_arch.load_model(str(dst))  # the network_g it records
    own = net.state_dict()
    assert set(loaded.state_dict()) == set(own)
    assert all(torch.equal(v, own[k]) for k, v in loaded.state_dict().items())
    # a bare state dict (a net_g_*.pth without network_g): detected from the shapes
    assert detect_network_opt(own) == network_g
    torch.save(own, tmp_path / 'bare.pth')
    bare = gaussiansr_arch.load_model(str(tmp_path / 'bare.pth'))
    lq = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        want = net.upscale(lq, scale=2.5)
        assert torch.equal(bare.upscale(lq, scale=2.5), want) and torch.equal(loaded.upscale(lq, scale=2.5), want)
    # --param-key params takes the other set
    other = tmp_path / 'other.pth'
    convert_gsasr.run(
        [str(tmp_path / 'net_g.pth'), str(tmp_path / 'net_fea2gs.pth'), str(other), '--param-key', 'params']
    )
    loaded = gaussiansr_arch.load_model(str(other))
    assert torch.equal(loaded.head.embedding, noise['gs_embedding'])


def test_converter_errors_are_one_line(tmp_path, capsys):
    net = tiny()
    encoder, head = official_layout(net, torch.Generator().manual_seed(0))
    g, h, dst = tmp_path / 'g.pth', tmp_path / 'h.pth', tmp_path / 'o.pth'
    torch.save({'params': encoder}, g)
    torch.save({'params': {**head, 'extra.weight': torch.zeros(1)}}, h)

    def fails(*args) -> str:
        return th.tool_error(capsys, convert_gsasr.run, [str(a) for a in args])

    assert f"head file {h}: unexpected Fea2GS key 'extra.weight'" in fails(g, h, dst)
    torch.save({'params': head}, h)
    assert 'neither EDSRNOUP, RDNNOUP nor HATNOUP' in fails(h, h, dst)
    assert f'encoder file {tmp_path / "missing.pth"} does not exist' in fails(tmp_path / 'missing.pth', h, dst)
    assert not dst.exists()
    convert_gsasr.run([str(g), str(h), str(dst)])
    assert '--force' in fails(g, h, dst)
    convert_gsasr.run([str(g), str(h), str(dst), '--force'])


# ----------------------------------------------------------------------------- training through our trainer
def test_short_training_run_through_the_trainer(tmp_path):
    data = th.make_tiny_data(tmp_path / 'data')
    opt = th.train_opt(data, 'gsasr_tiny', total_iter=3, ckpt_freq=3, val_freq=3)
    opt['network_g'] = {'type': 'GSASR', **TINY}
    opt['train']['grad_clip'] = None  # as GSASR (clip_grad_norm: False)
    yml = th.write_yaml(opt, tmp_path / 'train.yml')
    th.run_entry('train', '-opt', yml, '--root', str(tmp_path))
    exp = tmp_path / 'experiments' / 'gsasr_tiny'
    log = th.read_logs(exp, 'train')
    assert 'End of training' in log and 'l_pix:' in log
    psnr = th.metric_values(log, 'psnr')
    assert len(psnr) == 2 and all(5 < float(v) < 60 for v in psnr)
    net = gaussiansr_arch.load_model(str(exp / 'models' / 'net_g_latest.pth'))
    assert isinstance(net, GSASR) and net.head.seeds_side == 4


# ----------------------------------------------------------------------------- parity with the official code
def load_official(file: str):
    """Import an official module with a private ARCH_REGISTRY (its names would clash with BasicSR's)."""
    from basicsr.utils.registry import Registry

    registry = types.ModuleType('gsasr_official_registry')
    registry.ARCH_REGISTRY = Registry('gsasr-official')
    with mock.patch.dict(sys.modules, {'basicsr.utils.registry': registry}):
        spec = importlib.util.spec_from_file_location(f'_gsasr_official_{file[:-3]}', GSASR_REF / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def official():
    if not (GSASR_REF / 'archs__fea2gs_arch.py').is_file():
        pytest.skip(f'{GSASR_REF} is absent')
    pytest.importorskip('einops')
    return types.SimpleNamespace(edsr=load_official('archs__edsr_arch.py'), head=load_official('archs__fea2gs_arch.py'))


def official_kernel(params: torch.Tensor, canvas, scale, dmax: float, pixels=None, step: float = 1.2):
    """The official render of one image, brute force in float64: ``generate_2D_gaussian_splatting_step``'s
    activations, ``rendering_cuda_new``'s transforms, then ``gs.cu``'s sum over every Gaussian of
    exp(-0.5 q) x colour x alpha at every pixel within its ``dmax`` box.

    Args:
        params (Tensor): [N, 9] Fea2GS output (sigma_x, sigma_y, rho, alpha, rgb, mean_x, mean_y).
        canvas (tuple[int, int]): (H, W) rendered. scale: the scale (step size 1.2 / scale).
        pixels (tuple[Tensor, Tensor] | None): (rows, cols) of the pixels to evaluate; None: all.

    Returns:
        Tensor: [3, n] at ``pixels``, or [3, H, W].
    """
    p = params.double()
    sigma_x = 0.99999 * torch.sigmoid(p[:, 0]) + 1e-6
    sigma_y = 0.99999 * torch.sigmoid(p[:, 1]) + 1e-6
    rho = 0.999999 * torch.tanh(p[:, 2])
    colour = torch.sigmoid(p[:, 4:7]) * torch.sigmoid(p[:, 3:4])
    x, y = p[:, 7] * 2 - 1, p[:, 8] * 2 - 1
    h, w = canvas
    step_size = step / float(scale)
    # rendering_cuda_new: the kernel's (x, y) sigmas and centres
    kx, ky = sigma_y / step_size * 2 / (w - 1), sigma_x / step_size * 2 / (h - 1)
    x = (x + 1 - 1 / w) * w / (w - 1) - 1
    y = (y + 1 - 1 / h) * h / (h - 1) - 1
    rows, cols = (
        pixels
        if pixels is not None
        else (t.flatten() for t in torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij'))
    )
    py = 2.0 * rows.double() / (h - 1) - 1  # gs.cu's pixel centres
    px = 2.0 * cols.double() / (w - 1) - 1
    out = torch.zeros(len(py), 3, dtype=torch.float64)
    for s in range(0, len(x), 1024):
        part = slice(s, s + 1024)
        dx, dy = px[:, None] - x[part], py[:, None] - y[part]
        q = (dx / kx[part]) ** 2 - 2 * rho[part] * dx * dy / (kx[part] * ky[part]) + (dy / ky[part]) ** 2
        v = torch.exp(-0.5 / (1 - rho[part] ** 2) * q) * ((dx.abs() <= dmax) & (dy.abs() <= dmax))
        out += v @ colour[part]
    return out.T if pixels is not None else out.T.reshape(3, h, w)


def parity(official_nets, lq: torch.Tensor, ours: torch.Tensor, scale: float, dmax: float, count: int = 600):
    """max |ours - official test()| over ``count`` random pixels and the last row and column of ``ours``
    [3, H, W], and the official canvas size."""
    pixels = sample_pixels(ours.shape[-2:], count)
    want, canvas = official_test(official_nets, lq, scale, dmax, pixels)
    return (ours.double()[:, pixels[0], pixels[1]] - want).abs().max().item(), canvas


def official_test(official_nets, lq, scale, dmax, pixels=None):
    """The official ``test()``: reflect-pad to the window, encoder, Fea2GS, render ceil(s x padded)."""
    encoder, head = official_nets
    window = head.window_size
    h, w = lq.shape[-2:]
    padded = F.pad(lq, (0, (-w) % window, 0, (-h) % window), 'reflect')
    scale32 = torch.tensor(scale, dtype=torch.float32)
    canvas = tuple(math.ceil(scale32 * n) for n in padded.shape[-2:])
    with torch.no_grad():
        params = head(encoder(padded), scale32.unsqueeze(0))[0]
    return official_kernel(params, canvas, scale32, dmax, pixels), canvas


def convert_official(folder: Path, encoder, head) -> GSASR:
    """Save the official networks as the official training does, convert, load (``folder``: a new one)."""
    folder.mkdir()
    torch.save({'params_ema': encoder.state_dict(), 'params': encoder.state_dict()}, folder / 'net_g.pth')
    torch.save({'params_ema': head.state_dict(), 'params': head.state_dict()}, folder / 'net_fea2gs.pth')
    dst = folder / 'converted.pth'
    convert_gsasr.run([str(folder / 'net_g.pth'), str(folder / 'net_fea2gs.pth'), str(dst)])
    return gaussiansr_arch.load_model(str(dst))


def official_tiny(official, seed: int, **changes):
    """Official EDSRNOUP (8 channels, 1 block) and Fea2GS as TINY, with ``changes`` to Fea2GS's options."""
    torch.manual_seed(seed)
    encoder = official.edsr.EDSRNOUP(3, 3, num_feat=8, num_block=1).eval()
    options = {
        'inchannel': 8,
        'channel': 12,
        'num_heads': 2,
        'num_crossattn_blocks': 1,
        'num_crossattn_layers': 2,
        'num_selfattn_blocks': 1,
        'num_selfattn_layers': 2,
        'num_gs_seed': 16,
        'window_size': 4,
    }
    return encoder, official.head.Fea2GS(**{**options, **changes}).eval()


# (LR size, output size, dmax): non-square LR, not a multiple of the window; x2.5, x3.5, x4, and a
# size whose scale 45/14 makes ceil(s x padded) round up; dmax 0.5 is the official training setting.
TINY_CASES = [
    ((14, 19), (35, 48), 0.5),
    ((14, 19), (49, 66), 0.5),
    ((14, 19), (56, 76), 0.5),
    ((14, 19), (45, 61), 0.5),
]


def test_parity_with_official_tiny(official, tmp_path):
    encoder, head = official_tiny(official, 0)
    ours = convert_official(tmp_path / 'tiny', encoder, head)
    assert torch.equal(
        cross_position_index(4, 4), head.window_crossattn_blocks[0].blocks[0].window_cross_attn.relative_position_index
    )
    torch.manual_seed(5)
    lq = torch.rand(1, 3, 14, 19)
    for lr_size, size, dmax in TINY_CASES:
        with torch.no_grad():
            got = ours.upscale(lq, size=size)[0]
        diff, canvas = parity((encoder, head), lq, got, size[0] / lr_size[0], dmax)
        print(
            f'GSASR parity (tiny, window 4): {lr_size} -> {size} (canvas {canvas}, dmax {dmax}): max |diff| {diff:.2e}'
        )
        assert diff <= PARITY_TOLERANCE


def test_parity_with_official_other_layouts(official, tmp_path):
    """Seeds per window side != window (8x8 windows, 4x4 seeds: 4 Gaussians per LR pixel), two blocks
    of one layer; and the official test setting dmax 0.1 on an LR large enough for its box (3 LR px)."""
    layout = {'num_heads': 3, 'num_crossattn_blocks': 2, 'num_crossattn_layers': 1, 'num_selfattn_blocks': 2}
    encoder, head = official_tiny(official, 1, **layout, num_selfattn_layers=1, window_size=8)
    ours = convert_official(tmp_path / 'window8', encoder, head)
    assert ours.per_side == 2
    torch.manual_seed(6)
    lq = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        got = ours.upscale(lq, scale=3.5)[0]  # 74 x 105: s = 74 / 21
    diff, canvas = parity((encoder, head), lq, got, 74 / 21, 0.5)
    print(f'GSASR parity (window 8, 4x4 seeds): (21, 30) -> (74, 105) (canvas {canvas}): max |diff| {diff:.2e}')
    assert diff <= PARITY_TOLERANCE

    encoder, head = official_tiny(official, 2)
    ours = convert_official(tmp_path / 'dmax', encoder, head)
    lq = torch.rand(1, 3, 58, 71)  # padded 60 x 72: the dmax 0.1 box reaches 3 LR px
    with torch.no_grad():
        got = ours.upscale(lq, scale=2.5)[0]
    diff, canvas = parity((encoder, head), lq, got, 2.5, 0.1, count=300)
    print(
        f'GSASR parity (tiny, dmax 0.1): (58, 71) -> {tuple(got.shape[-2:])} (canvas {canvas}): max |diff| {diff:.2e}'
    )
    assert diff <= PARITY_TOLERANCE


def sample_pixels(size, count: int):
    """``count`` random pixels of an (H, W) image plus its last row and column (where the crop ends)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.randint(0, h, (count,), generator=g), torch.full((w,), h - 1), torch.arange(h)])
    cols = torch.cat([torch.randint(0, w, (count,), generator=g), torch.arange(w), torch.full((h,), w - 1)])
    return rows, cols


def test_parity_with_official_paper_model(official, tmp_path):
    """The paper configuration (EDSR-baseline + the 19.2M Fea2GS) at x3.5 on a 12x20 LR (padded 12x24)."""
    torch.manual_seed(3)
    encoder, head = official.edsr.EDSRNOUP(3, 3).eval(), official.head.Fea2GS().eval()
    ours = convert_official(tmp_path / 'paper', encoder, head)
    lq = torch.rand(1, 3, 12, 20)
    with torch.no_grad():
        got = ours.upscale(lq, scale=3.5)[0]
    assert got.shape[-2:] == (42, 70)
    diff, canvas = parity((encoder, head), lq, got, 3.5, 0.5)
    print(f'GSASR parity (paper model): (12, 20) -> (42, 70) (canvas {canvas}): max |diff| {diff:.2e}')
    assert diff <= PARITY_TOLERANCE


def test_upscale_tool_refuses_a_non_isotropic_size_in_one_line(tmp_path, capsys):
    import cv2
    import numpy as np

    from gaussiansr_arch.tools import upscale
    from gaussiansr_arch.utils.weights import save_weights

    net = tiny()
    weights = tmp_path / 'gsasr.pth'
    save_weights(str(weights), net.state_dict(), network_g={'type': 'GSASR', **TINY})
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (10, 13, 3), dtype=np.uint8))
    argv = [str(image), '--weights', str(weights), '--size', '25x40', '-o', str(tmp_path / 'out'), '--quiet']
    assert f'{image}: GSASR upscales both axes by one factor' in th.tool_error(capsys, upscale.run, argv)
    assert not (tmp_path / 'out' / 'in.png').exists()
