"""Tests of the GaussianSR arch (gaussiansr_arch/archs/gaussiansr_arch.py) and its encoders.

Tiny configurations everywhere except where the test is about the method itself (parameter
count, batch independence, dense vs per-query rendering): those use the real default model.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.decoders import DECODERS, LTEDecoder
from gaussiansr_arch.archs.encoders import RDNEncoder, build_encoder
from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR

TINY = dict(encoder_opt={'num_feat': 8, 'num_block': 1}, splat_channels=4, bank_size=4, decoder_hidden=[8], num_freq=8)
SWINIR_TINY = {'embed_dim': 12, 'depths': [1, 1], 'num_heads': [2, 2], 'window_size': 4, 'img_size': 16}
RDN_TINY = {'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4}


def tiny_model(**overrides) -> GaussianSR:
    return GaussianSR(**{**TINY, **overrides})


def pixel_queries(batch: int, size, dtype=torch.float32):
    """coord and cell [B,H*W,2] of every pixel centre of an (H, W) output."""
    coord = make_coord(size, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
    cell = make_cell(size, coord.shape[1], dtype=dtype).unsqueeze(0).expand(batch, -1, -1)
    return coord, cell


class FixedGumbel:
    """Stand-in for F.gumbel_softmax with noise fixed per logits shape, so train mode is a
    deterministic (and differentiable) function for gradcheck."""

    def __init__(self):
        self.noise = {}

    def __call__(self, logits, tau=1.0, hard=False, dim=-1):
        if logits.shape not in self.noise:
            g = torch.Generator().manual_seed(5)
            uniform = torch.rand(logits.shape, generator=g, dtype=logits.dtype).clamp_min(1e-9)
            self.noise[logits.shape] = -torch.log(-torch.log(uniform))
        return torch.softmax((logits + self.noise[logits.shape]) / tau, dim=dim)


# ---------------------------------------------------------------- parameter count
def conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def linear_params(cin: int, cout: int, bias: bool = True) -> int:
    return cin * cout + (cout if bias else 0)


def test_default_parameter_count():
    """EDSR-baseline encoder + 3x3 classifier 64->100 + bank 100x4 + LTE decoder."""
    c, blocks, bank, num_freq, hidden = 64, 16, 100, 256, [256] * 4
    encoder = conv_params(3, c, 3) + 2 * blocks * conv_params(c, c, 3) + conv_params(c, c, 3)
    classifier = conv_params(c, bank, 3)
    bank_params = bank * 4  # sigma_y, sigma_x, rho, opacity
    widths = [num_freq, *hidden, 3]
    decoder = (
        2 * conv_params(c, num_freq, 3)
        + linear_params(2, num_freq // 2, bias=False)
        + sum(linear_params(a, b) for a, b in zip(widths, widths[1:]))
    )
    analytic = encoder + classifier + bank_params + decoder

    model = GaussianSR()
    count = sum(p.numel() for p in model.parameters())
    print(f'GaussianSR default parameters: {count:,} (analytic {analytic:,})')
    assert count == analytic == 1_838_135
    assert bank_params == sum(p.numel() for p in model.splatting.bank.parameters())


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize('decoder', ['lte', 'mlp'])
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_gaussiansr_gradcheck(decoder, mode, monkeypatch):
    """Finite differences match autograd through the whole model w.r.t. the input and the bank."""
    monkeypatch.setattr(F, 'gumbel_softmax', FixedGumbel())
    model = tiny_model(decoder=decoder).double().train(mode == 'train')
    lq = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    coord = torch.rand(1, 5, 2, dtype=torch.float64) * 1.9 - 0.95
    cell = torch.full((1, 5, 2), 2 / 9, dtype=torch.float64)
    bank = model.splatting.bank
    names = ['splatting.bank.sigma_raw', 'splatting.bank.rho_raw', 'splatting.bank.opacity_raw']
    bank_params = tuple(getattr(bank, n.split('.')[-1]).detach().clone().requires_grad_(True) for n in names)

    def run(x, *params):
        return torch.func.functional_call(model, dict(zip(names, params)), (x, coord, cell))

    # Two calls must agree exactly, else finite differences are meaningless.
    torch.testing.assert_close(run(lq, *bank_params), run(lq, *bank_params), rtol=0, atol=0)
    assert torch.autograd.gradcheck(run, (lq, *bank_params), eps=1e-6, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- determinism, batch independence
def test_eval_is_deterministic_and_batch_independent():
    """The real default model: an image alone and inside a batch of other images gives the same output."""
    model = GaussianSR().eval()
    lq = torch.rand(3, 3, 9, 8)
    with torch.no_grad():
        alone = model.upscale(lq[1:2], size=(19, 17))
        again = model.upscale(lq[1:2], size=(19, 17))
        batched = model.upscale(lq, size=(19, 17))
        coord, cell = pixel_queries(3, (5, 6))
        queried = model(lq, coord, cell)
        queried_alone = model(lq[2:3], coord[:1], cell[:1])
    assert torch.equal(alone, again)
    assert (batched[1:2] - alone).abs().max().item() <= 1e-6
    assert (queried[2:3] - queried_alone).abs().max().item() <= 1e-6


def test_gumbel_in_training_argmax_in_eval():
    """Eval picks the argmax of the classifier logits; training draws a soft, random mixture."""
    model = tiny_model()
    lq = torch.rand(2, 3, 6, 7)
    model.eval()
    with torch.no_grad():
        state = model.encode(lq)
        logits = model.splatting.classifier(model.encoder((lq - 0.5) / 0.5))
        kernels = model.splatting.bank.kernels()
    choice = state.kernels.choice
    assert torch.equal(choice, logits.argmax(dim=1))
    expected = kernels[choice].permute(0, 3, 1, 2)
    torch.testing.assert_close(
        torch.cat([state.kernels.sigma, state.kernels.rho, state.kernels.opacity], 1), expected, rtol=0, atol=0
    )

    model.train()
    with torch.no_grad():
        first, second = model.encode(lq).kernels, model.encode(lq).kernels
    assert first.choice is None
    assert not torch.equal(first.sigma, second.sigma)  # Gumbel noise is sampled in training
    # A soft mixture of bank entries stays inside the bank's convex hull.
    assert first.sigma.min() >= kernels[:, :2].min() - 1e-6
    assert first.sigma.max() <= kernels[:, :2].max() + 1e-6


# ---------------------------------------------------------------- scale consistency
def _record_render_features(model, monkeypatch):
    """Wrap model.render_features to record every (coord, features) pair it produces."""
    records = []
    original = model.render_features

    def recording(state, coord):
        feat = original(state, coord)
        records.append((coord.detach().reshape(-1, 2), feat.detach()[0]))
        return feat

    monkeypatch.setattr(model, 'render_features', recording)
    return records


def _features_on_grid(records, size) -> torch.Tensor:
    """Scatter recorded features of an (H, W) render onto its pixel grid: [H,W,C]."""
    h, w = size
    coord = torch.cat([c for c, _ in records])
    feat = torch.cat([f for _, f in records])
    rows = torch.round(((coord[:, 0] + 1) * h - 1) / 2).long()
    cols = torch.round(((coord[:, 1] + 1) * w - 1) / 2).long()
    grid = torch.full((h, w, feat.shape[-1]), float('nan'))
    grid[rows, cols] = feat
    assert not torch.isnan(grid).any()
    return grid


def test_rendered_features_are_scale_consistent(monkeypatch):
    """Features at a physical point do not depend on the output size that samples them.

    In LIIF's convention the pixel centres of an s-times and a 3s-times output coincide
    (pixel i of the first is pixel 3i+1 of the second), while x2 and x4 centres never do;
    so we compare x2 with x6 and x4 with x12 on a non-square LR image, as rendered by upscale.
    """
    model = tiny_model().eval()
    lq = torch.rand(1, 3, 5, 7)
    for low, high in ((2, 6), (4, 12)):
        grids = []
        for scale in (low, high):
            records = _record_render_features(model, monkeypatch)
            with torch.no_grad():
                model.upscale(lq, scale=scale, chunk_size=97)
            grids.append(_features_on_grid(records, (5 * scale, 7 * scale)))
            monkeypatch.undo()
        coarse, fine = grids
        coincident = fine[1::3, 1::3]
        s = model.splat_channels
        assert (coarse[..., :s] - coincident[..., :s]).abs().max().item() <= 1e-5  # Gaussian stream
        assert (coarse[..., s:] - coincident[..., s:]).abs().max().item() <= 1e-5  # bicubic stream


def test_render_features_independent_of_requested_size():
    """Points queried before and after rendering other sizes from one state get the same features."""
    model = tiny_model().eval()
    lq = torch.rand(1, 3, 6, 5)
    points = torch.rand(1, 40, 2) * 2 - 1
    with torch.no_grad():
        state = model.encode(lq)
        before = model.render_features(state, points)
        for size in ((7, 9), (30, 25)):
            model.render(state, size)
        after = model.render_features(state, points)
        # The Gaussian stream alone, straight from the field: the same function of position.
        field = model.render_features(state, torch.cat([points, points.flip(1)], dim=1))[:, :40]
    assert torch.equal(before, after)
    assert torch.equal(before, field)


# ---------------------------------------------------------------- upscale vs forward, chunking, sizes
def test_upscale_equals_forward_default_model():
    """Dense LTE render path (upscale) == per-query path (forward) at every pixel centre, real model."""
    model = GaussianSR().eval()
    lq = torch.rand(2, 3, 6, 7)
    size = (13, 17)
    with torch.no_grad():
        dense = model.upscale(lq, size=size)
        coord, cell = pixel_queries(2, size)
        per_query = model(lq, coord, cell).transpose(1, 2).reshape(2, 3, *size)
    assert (dense - per_query).abs().max().item() <= 1e-5


@pytest.mark.parametrize('decoder', ['lte', 'mlp'])
def test_upscale_equals_forward_and_chunking(decoder):
    model = tiny_model(decoder=decoder).eval()
    lq = torch.rand(1, 3, 5, 6)
    size = (11, 16)
    with torch.no_grad():
        reference = model.upscale(lq, size=size)
        coord, cell = pixel_queries(1, size)
        per_query = model(lq, coord, cell).transpose(1, 2).reshape(1, 3, *size)
        for chunk in (1, 16, 17, 50, 10_000):
            assert (model.upscale(lq, size=size, chunk_size=chunk) - reference).abs().max().item() <= 1e-6
    assert (reference - per_query).abs().max().item() <= 1e-5


@pytest.mark.parametrize('scale', [1.0, 1.5, 2.4, 3.7, 4, 12, 30])
def test_upscale_output_sizes(scale):
    model = tiny_model().eval()
    lq = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        out = model.upscale(lq, scale=scale, chunk_size=8192)
    assert out.shape == (1, 3, round(5 * scale), round(7 * scale))
    assert torch.isfinite(out).all()


def test_upscale_non_square_sizes():
    model = tiny_model().eval()
    lq = torch.rand(2, 3, 7, 11)
    with torch.no_grad():
        assert model.upscale(lq, size=(13, 40)).shape == (2, 3, 13, 40)
        assert model.upscale(lq, scale=(2, 3.5)).shape == (2, 3, 14, round(11 * 3.5))
        assert model.upscale(lq, size=(3, 5)).shape == (2, 3, 3, 5)  # downscaling works too


def test_upscale_many_encodes_once():
    """Several output sizes from ONE encoder call, each equal to its own upscale call."""
    model = tiny_model().eval()
    lq = torch.rand(1, 3, 7, 11)
    calls = []
    handle = model.encoder.register_forward_hook(lambda *_: calls.append(1))
    sizes = [(13, 40), (14, 22), (28, 44), (7, 11)]
    with torch.no_grad():
        many = model.upscale_many(lq, sizes)
        assert len(calls) == 1
        singles = [model.upscale(lq, size=s) for s in sizes]
    handle.remove()
    assert len(calls) == 1 + len(sizes)
    for out, single, size in zip(many, singles, sizes):
        assert out.shape == (1, 3, *size)
        assert torch.equal(out, single)


# ---------------------------------------------------------------- variants train
@pytest.mark.parametrize(
    'overrides', [{'splat_channels': 0}, {'decoder': 'mlp'}, {}], ids=['bicubic-only', 'mlp-decoder', 'default-tiny']
)
def test_variants_train_one_step(overrides):
    model = tiny_model(**overrides).train()
    lq, gt = torch.rand(2, 3, 6, 6), torch.rand(2, 20, 3)
    coord = torch.rand(2, 20, 2) * 2 - 1
    cell = torch.full((2, 20, 2), 2 / 15)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = F.l1_loss(model(lq, coord, cell), gt)
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None, f'{name} received no gradient (DDP would fail on it)'
            assert torch.isfinite(p.grad).all(), name
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    if overrides.get('splat_channels') == 0:
        assert model.splatting is None


# ---------------------------------------------------------------- bounded kernels
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_kernels_bounded_for_extreme_features(mode):
    model = tiny_model().train(mode == 'train')
    splatting = model.splatting
    with torch.no_grad():  # push the bank's raw parameters to extremes too
        splatting.bank.sigma_raw.mul_(1e3)
        splatting.bank.rho_raw.fill_(1e4)
        splatting.bank.opacity_raw.fill_(-1e4)
    feat = torch.randn(2, 8, 6, 6) * 1e4
    kernels = splatting(feat)
    bank = splatting.bank
    for t in (kernels.sigma, kernels.rho, kernels.opacity):
        assert torch.isfinite(t).all()
    slack = 1e-6  # float32 rounding of sigma_min + (sigma_max - sigma_min) * sigmoid(+-inf)
    assert kernels.sigma.min() >= bank.sigma_min - slack and kernels.sigma.max() <= bank.sigma_max + slack
    assert kernels.rho.abs().max() <= bank.rho_max < 1
    assert kernels.opacity.min() >= 0 and kernels.opacity.max() <= 1

    lq = torch.rand(1, 3, 5, 5) * 1e4  # far outside [0,1]: extreme encoder features
    coord = torch.rand(1, 12, 2) * 2 - 1
    cell = torch.full((1, 12, 2), 0.1)
    out = model(lq, coord, cell)
    assert torch.isfinite(out).all()
    out.abs().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------- input checks
def test_input_checks_raise_value_error():
    model = tiny_model().eval()
    lq = torch.rand(1, 3, 5, 5)
    coord, cell = pixel_queries(1, (4, 4))
    with pytest.raises(ValueError, match='4-D'):
        model.upscale(lq[0], size=(8, 8))
    with pytest.raises(ValueError, match='4-D'):
        model(lq[0], coord, cell)
    with pytest.raises(ValueError, match='3 \\(RGB\\) channels'):
        model.upscale(torch.rand(1, 1, 5, 5), scale=2)
    with pytest.raises(ValueError, match='3 \\(RGB\\) channels'):
        model(torch.rand(1, 4, 5, 5), coord, cell)
    for size in ((0, 8), (8, -1), (2.5, 3), (8,), 'ab'):
        with pytest.raises(ValueError, match='size must be'):
            model.upscale(lq, size=size)
    with pytest.raises(ValueError, match='size must be'):
        model.upscale_many(lq, [(8, 8), (0, 3)])
    for scale in (float('nan'), 0, -2, float('inf'), 'x'):
        with pytest.raises(ValueError, match='scale must be'):
            model.upscale(lq, scale=scale)
    with pytest.raises(ValueError, match='exactly one'):
        model.upscale(lq)
    with pytest.raises(ValueError, match='coord and cell shapes differ'):
        model(lq, coord, cell[:, :5])
    with pytest.raises(ValueError, match=r'cell must be a \[B,Q,2\]'):
        model(lq, coord, cell[..., :1])
    with pytest.raises(ValueError, match=r'coord must be a \[B,Q,2\]'):
        model(lq, coord[0], cell)
    with pytest.raises(ValueError, match='batch size'):
        model(lq, coord.expand(2, -1, -1), cell.expand(2, -1, -1))
    with pytest.raises(ValueError, match='chunk_size'):
        model.upscale(lq, size=(8, 8), chunk_size=0)


def test_constructor_checks():
    with pytest.raises(ValueError, match='splat_channels'):
        tiny_model(splat_channels=9)
    with pytest.raises(ValueError, match='decoder'):
        tiny_model(decoder='cnn')
    with pytest.raises(ValueError, match='unknown encoder'):
        GaussianSR(encoder='vgg')
    with pytest.raises(ValueError, match='bad encoder_opt'):
        GaussianSR(encoder='rdn', encoder_opt={'num_feats': 8})
    with pytest.raises(ValueError, match='bad encoder_opt'):
        GaussianSR(encoder='swinir', encoder_opt={'upsampler': 'pixelshuffle'})


def test_decoders_are_chosen_by_name_and_used_by_capability(monkeypatch):
    """``decoder`` names a ``DECODERS`` entry; GaussianSR follows the decoder's declared capabilities:
    an LTE decoder declaring no dense form renders by queries (same image, same state_dict)."""
    with pytest.raises(ValueError, match=r"unknown decoder 'cnn'; known decoders: \['lte', 'mlp'\]"):
        tiny_model(decoder='cnn')
    assert tiny_model().decoder.reads_neighbourhood and not tiny_model(decoder='mlp').decoder.reads_neighbourhood

    class QueryOnlyLTE(LTEDecoder):
        has_dense_form = False

        def forward_dense(self, *args, **kwargs):
            raise AssertionError('a decoder without a dense form must not be asked for one')

    monkeypatch.setitem(DECODERS, 'lte-queries', QueryOnlyLTE)
    dense = tiny_model().eval()
    queries = tiny_model(decoder='lte-queries').eval()
    queries.load_state_dict(dense.state_dict())
    lq = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert (queries.upscale(lq, size=(11, 16)) - dense.upscale(lq, size=(11, 16))).abs().max().item() <= 1e-5


# ---------------------------------------------------------------- RDN and SwinIR encoders
def test_rdn_encoder_default_shape():
    """Config B (D=16, C=8, G=64, G0=64): parameter count from the layer shapes."""
    g0, d, c, g = 64, 16, 8, 64
    block = sum(conv_params(g0 + i * g, g, 3) for i in range(c)) + conv_params(g0 + c * g, g0, 1)
    analytic = conv_params(3, g0, 3) + conv_params(g0, g0, 3) + d * block  # two shallow convs + blocks
    analytic += conv_params(d * g0, g0, 1) + conv_params(g0, g0, 3)
    encoder = RDNEncoder()
    assert encoder.out_channels == 64
    assert sum(p.numel() for p in encoder.parameters()) == analytic


def test_swinir_encoder_has_no_head():
    encoder = build_encoder('swinir', **SWINIR_TINY).eval()  # eval: no stochastic depth
    assert encoder.out_channels == SWINIR_TINY['embed_dim']
    names = [n for n, _ in encoder.named_parameters()]
    assert not any(n.startswith(('conv_last', 'upsample', 'conv_before_upsample')) for n in names)
    # SwinIR's mean shift / img_range are not applied: a constant input maps through conv_first directly.
    x = torch.zeros(1, 3, 8, 8)
    shallow = encoder.conv_first(x)
    expected = encoder.conv_after_body(encoder.forward_features(shallow)) + shallow
    torch.testing.assert_close(encoder(x), expected)
    # Sizes that are not multiples of the window are padded and cropped back, even tiny ones
    # (smaller than the padding, where reflect padding is impossible).
    for size in ((7, 9), (3, 2), (1, 1)):
        assert encoder(torch.rand(2, 3, *size)).shape == (2, SWINIR_TINY['embed_dim'], *size)


@pytest.mark.parametrize('encoder, encoder_opt', [('rdn', RDN_TINY), ('swinir', SWINIR_TINY)])
def test_other_encoders_through_build_network(encoder, encoder_opt):
    """Build from a YAML-like dict, run odd sizes (SwinIR pads to the window), train-step gradients."""
    opt = {
        'type': 'GaussianSR',
        'encoder': encoder,
        'encoder_opt': dict(encoder_opt),
        'splat_channels': 4,
        'bank_size': 4,
        'decoder_hidden': [8],
        'num_freq': 8,
    }
    model = build_network(opt)
    assert isinstance(model, GaussianSR)
    assert model.encoder.out_channels == encoder_opt.get('embed_dim', encoder_opt.get('num_feat'))
    lq = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        feat = model.encoder((lq - 0.5) / 0.5)
        out = model.eval().upscale(lq, scale=2.3)
    assert feat.shape == (2, model.encoder.out_channels, 7, 9)
    assert out.shape == (2, 3, round(7 * 2.3), round(9 * 2.3))
    assert torch.isfinite(out).all()

    model.train()
    coord = torch.rand(2, 10, 2) * 2 - 1
    loss = model(lq, coord, torch.full((2, 10, 2), 0.1)).abs().mean()
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f'parameters without gradient (DDP would fail): {unused}'


# ---------------------------------------------------------------- image skip (ours, off by default)
def test_default_model_has_no_image_skip():
    """The paper's / authors' model: the decoder output is the prediction (no LR image added)."""
    assert GaussianSR().image_skip == 'none'
    with pytest.raises(ValueError, match='image_skip'):
        tiny_model(image_skip='nearest-ish')


@pytest.mark.parametrize('decoder', ['lte', 'mlp'])
@pytest.mark.parametrize('mode', ['bilinear', 'bicubic'])
def test_image_skip_adds_exactly_the_interpolated_image(decoder, mode):
    """Same weights with and without the skip: the outputs differ by the interpolated LR image
    (in [0,1] units: half the [-1,1]-normalised image), per query and on the dense path."""
    torch.manual_seed(0)
    plain = tiny_model(decoder=decoder).eval()
    skipped = tiny_model(decoder=decoder, image_skip=mode).eval()
    skipped.load_state_dict(plain.state_dict())
    lq = torch.rand(1, 3, 5, 6)
    size = (11, 13)
    coord, cell = pixel_queries(1, size)
    grid = F.grid_sample(
        (lq - 0.5) / 0.5, coord.flip(-1).unsqueeze(1), mode=mode, padding_mode='border', align_corners=False
    )[:, :, 0].transpose(1, 2)
    with torch.no_grad():
        diff = skipped(lq, coord, cell) - plain(lq, coord, cell)
        dense = skipped.upscale(lq, size=size) - plain.upscale(lq, size=size)
    assert (diff - 0.5 * grid).abs().max().item() <= 1e-5
    assert (dense.flatten(2).transpose(1, 2) - 0.5 * grid).abs().max().item() <= 1e-5
