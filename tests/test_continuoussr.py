"""ContinuousSR: parity with the official model, the rendering rule, the interface, the converter, training.

The parity tests build the official ``ContinuousGaussian`` from ``../shared/reference/continuoussr``
(its ``gsplat`` import replaced by this file's brute force of the fork's kernels, ``.cuda()`` made a
no-op) and skip cleanly without it. Both models share one random encoder; the official heads,
re-scaled so that colours, drifts and covariances spread over their ranges, are converted into
ours by ``gaussiansr-convert-continuoussr``'s key mapping. The whole file takes ~1 min on 2 cores.
"""

import copy
import importlib.util
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from gaussiansr_arch.archs import gaussian_renderer
from gaussiansr_arch.archs.continuoussr_arch import (
    ContinuousGaussians,
    ContinuousSR,
    cholesky_dictionary,
    conic_of_cholesky,
    covariance_from_cholesky,
    max_window_radius,
)
from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.tools import convert_continuoussr as convert
from gaussiansr_arch.utils.methods import get_method

import train_helpers as th

REPO_ROOT = Path(__file__).resolve().parents[1]
CSR_REF = REPO_ROOT.parent / 'shared' / 'reference' / 'continuoussr'
TINY = copy.deepcopy(dict(get_method('ContinuousSR').tiny))  # the descriptor's tiny configuration
# (LR size, official scale tensor (s_h, s_w)): integer, non-integer and non-square scales, with
# h s and w s integers so that the official nominal scale is the size ratio.
PARITY_CASES = {'x4': ((8, 8), (4.0, 4.0)), 'x2.7': ((10, 20), (2.7, 2.7)), 'x2-x3.5': ((8, 8), (2.0, 3.5))}
ALPHA_MIN = 1 / 255
TILE = 16  # the fork's BLOCK_X = BLOCK_Y
TILE_CAPACITY = TILE * TILE  # rasterize_forward_sum stops after its first batch of BLOCK_SIZE Gaussians


# ----------------------------------------------------------------------------- the fork's kernels, brute force
def project_gaussians_2d_reference(means2d, cholesky, img_height, img_width):
    """project_gaussians_2d_forward_kernel in float64: centre, conic (x, y upper triangle), 3-sigma radius."""
    x, y = means2d.double().unbind(-1)
    centre = torch.stack([0.5 * img_width * x + 0.5 * img_width, 0.5 * img_height * y + 0.5 * img_height], -1)
    l11, l21, l22 = cholesky.double().unbind(-1)
    cxx, cxy, cyy = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    det = cxx * cyy - cxy * cxy
    conic = torch.stack([cyy / det, -cxy / det, cxx / det], -1)
    b = 0.5 * (cxx + cyy)
    v1 = b + torch.sqrt(torch.clamp(b * b - det, min=0.1))  # compute_cov2d_bounds
    return centre, conic, torch.ceil(3 * torch.sqrt(v1)), det != 0


def rasterize_sum_reference(centre, conic, colours, opacity, img_height, img_width, alpha_max=1.0, visits=None):
    """rasterize_forward_sum's per-pixel formula in float64: [H, W, C].

    ``alpha = min(alpha_max, opacity exp(-sigma))`` (the kernel: ``min(1.f, ...)``), terms with
    ``sigma < 0`` or ``alpha < 1/255`` dropped, no background (commented out in the kernel).
    ``visits`` [H*W, N] (optional): the (pixel, Gaussian) pairs the kernel's tiles visit.
    """
    py, px = torch.meshgrid(
        torch.arange(img_height, dtype=torch.float64), torch.arange(img_width, dtype=torch.float64), indexing='ij'
    )
    dx = centre[:, 0] - px.reshape(-1, 1)
    dy = centre[:, 1] - py.reshape(-1, 1)
    a, b, c = conic.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp(opacity.double().reshape(-1) * torch.exp(-sigma), max=alpha_max)
    keep = (sigma >= 0) & (alpha >= ALPHA_MIN)
    if visits is not None:
        keep &= visits
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    return (alpha @ colours.double()).reshape(img_height, img_width, -1)


def tile_visits(centre, radius, valid, img_height, img_width, capacity=None):
    """[H*W, N]: the Gaussians each pixel's tile visits in the fork (3-sigma tile boxes, ``capacity`` per tile).

    A Gaussian is listed in the tiles its box ``centre +- radius`` overlaps (``get_tile_bbox``,
    C ``(int)`` truncation, clamped to the tile grid); each tile's list is in Gaussian order (all
    depths are 0; a stable sort) and ``rasterize_forward_sum`` reads only its first BLOCK_SIZE.
    """
    tiles_x, tiles_y = (img_width + TILE - 1) // TILE, (img_height + TILE - 1) // TILE

    def span(c, limit):
        lo = torch.trunc(c / TILE - radius / TILE).clamp(0, limit)
        hi = torch.trunc(c / TILE + radius / TILE + 1).clamp(0, limit)
        return lo, hi

    x_lo, x_hi = span(centre[:, 0], tiles_x)
    y_lo, y_hi = span(centre[:, 1], tiles_y)
    ty, tx = torch.meshgrid(torch.arange(tiles_y), torch.arange(tiles_x), indexing='ij')
    tx, ty = tx.reshape(-1, 1), ty.reshape(-1, 1)
    listed = (x_lo <= tx) & (tx < x_hi) & (y_lo <= ty) & (ty < y_hi) & valid  # [tiles, N]
    if capacity is not None:
        listed &= listed.cumsum(1) <= capacity
    py, px = torch.meshgrid(torch.arange(img_height), torch.arange(img_width), indexing='ij')
    pixel_tile = (py // TILE * tiles_x + px // TILE).reshape(-1)
    return listed[pixel_tile]


class ForkKernels:
    """Stand-ins for ``gsplat.project_gaussians_2d`` / ``gsplat.rasterize_sum``: brute force, records each call."""

    def __init__(self):
        self.calls = []

    def project_gaussians_2d(self, means2d, cholesky, img_height, img_width, tile_bounds, clip_thresh=0.01):
        centre, conic, radius, valid = project_gaussians_2d_reference(means2d, cholesky, img_height, img_width)
        self.calls.append({'means2d': means2d, 'cholesky': cholesky, 'H': img_height, 'W': img_width})
        return centre, torch.zeros(len(centre)), radius, conic, valid

    def rasterize_gaussians_sum(
        self, xys, depths, radii, conics, valid, colors, opacity, img_height, img_width, *_, **__
    ):
        self.calls[-1].update(colours=colors, opacity=opacity)
        return rasterize_sum_reference(xys, conics, colors, opacity, img_height, img_width).float()


# ----------------------------------------------------------------------------- the official model on the CPU
def _load(monkeypatch, name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


class SharedFeatures(nn.Module):
    """The official model's encoder: our encoder + feature upsampler (shared modules, so one encoder for both)."""

    def __init__(self, ours: ContinuousSR):
        super().__init__()
        self.encoder, self.upsampler = ours.encoder, ours.upsampler

    def forward(self, x):
        return self.upsampler(self.encoder(x))


def official_model(monkeypatch, ours: ContinuousSR, kernels: ForkKernels) -> nn.Module:
    """The reference ``ContinuousGaussian`` around ``ours``'s encoder, with ``kernels`` as its gsplat."""
    package = types.ModuleType('models')
    package.__path__ = []
    monkeypatch.setitem(sys.modules, 'models', package)
    registry = _load(monkeypatch, 'models.models', CSR_REF / 'models__models.py')
    package.register, package.make = registry.register, registry.make
    _load(monkeypatch, 'models.mlp', CSR_REF / 'models__mlp.py')
    utils = types.ModuleType('utils')
    utils.to_pixel_samples = None  # imported, never called by the model
    project = types.ModuleType('gsplat.project_gaussians_2d')
    project.project_gaussians_2d = kernels.project_gaussians_2d
    rasterize = types.ModuleType('gsplat.rasterize_sum')
    rasterize.rasterize_gaussians_sum = kernels.rasterize_gaussians_sum
    for name, module in (
        ('utils', utils),
        ('gsplat', types.ModuleType('gsplat')),
        ('gsplat.project_gaussians_2d', project),
        ('gsplat.rasterize_sum', rasterize),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.Tensor, 'cuda', lambda self, *args, **kwargs: self)
    monkeypatch.setattr(nn.Module, 'cuda', lambda self, *args, **kwargs: self)
    registry.models['shared-features'] = lambda: SharedFeatures(ours)
    gaussian = _load(monkeypatch, 'models.gaussian', CSR_REF / 'models__gaussian.py')
    return gaussian.ContinuousGaussian({'name': 'shared-features', 'args': {}}, None, None)


@torch.no_grad()
def spread_heads(official: nn.Module) -> None:
    """Re-scale the official heads' last layers: colours ~0.1-0.5, drifts over tanh's range, varied covariances.

    At initialisation colours are ~1e-3, drifts ~0.1 and every Gaussian is the dictionary's mean;
    the parity would then check little. Thin Gaussians (l22 -> 0) are avoided on purpose: their
    weights are ill-conditioned (1e-6 on a factor moves them by 1e-3), in any implementation.
    """
    official.mlp.layers[-1].weight.mul_(30)
    official.mlp.layers[-1].bias.fill_(0.3)
    official.mlp_offset.layers[-1].weight.mul_(400)
    official.conv1.weight.mul_(20)
    official.mlp_vector.layers[-1].weight.mul_(20)


@pytest.fixture(scope='module')
def models():
    """(ours, official, kernels): the full-size official heads around a tiny shared encoder."""
    if not (CSR_REF / 'models__gaussian.py').is_file():
        pytest.skip(f'{CSR_REF} is absent')
    with pytest.MonkeyPatch.context() as monkeypatch:
        torch.manual_seed(0)
        ours = ContinuousSR(encoder_opt={'num_feat': 8, 'num_block': 1}).eval()
        kernels = ForkKernels()
        official = official_model(monkeypatch, ours, kernels).eval()
        spread_heads(official)
        result = ours.load_state_dict(convert.convert_heads(official.state_dict()), strict=False)
        assert not result.unexpected_keys
        assert all(k.startswith(('encoder.', 'upsampler.')) for k in result.missing_keys)
        yield ours, official, kernels


@pytest.fixture(scope='module')
def parity_runs(models) -> dict:
    """Per case: the LR input, the official call's recorded Gaussians and output, and our output."""
    ours, official, kernels = models
    runs, g = {}, torch.Generator().manual_seed(1)
    for name, ((h, w), scale) in PARITY_CASES.items():
        lq = torch.rand(1, 3, h, w, generator=g)
        kernels.calls.clear()
        with torch.no_grad():
            official_out = official(lq, torch.tensor([scale]))
            call = dict(kernels.calls[0])
            size = (call['H'], call['W'])
            runs[name] = {
                'lq': lq,
                'scale': scale,
                'call': call,
                'official': official_out[0].permute(1, 2, 0),
                'gaussians': ours.gaussians(lq),
                'ours': ours.upscale(lq, size=size)[0].permute(1, 2, 0),
            }
    return runs


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize('case', list(PARITY_CASES))
def test_gaussians_equal_official(case, parity_runs):
    """Centres, Cholesky factors and colours of every Gaussian equal the official model's (<= 1e-5)."""
    run = parity_runs[case]
    call, g, (h, w) = run['call'], run['gaussians'], run['lq'].shape[-2:]
    height, width = call['H'], call['W']
    assert (height, width) == (round(h * run['scale'][0]), round(w * run['scale'][1]))
    # Official centres: [-1, 1] means -> the kernel's HR pixel-index frame -> LR pixels (row, col).
    centre_hr, _, _, _ = project_gaussians_2d_reference(call['means2d'], call['cholesky'], height, width)
    col = (centre_hr[:, 0] + 0.5) * w / width - 0.5
    row = (centre_hr[:, 1] + 0.5) * h / height - 0.5
    assert (torch.stack([row, col], -1) - g.centre.reshape(-1, 2).double()).abs().max().item() <= 1e-5
    # Official factors are in HR pixels: x (l11) times s_w, y (l21, l22) times s_h.
    s_h, s_w = run['scale']
    cholesky = call['cholesky'].double() / torch.tensor([s_w, s_h, s_h], dtype=torch.float64)
    assert (cholesky - g.cholesky.reshape(-1, 3).double()).abs().max().item() <= 1e-5
    assert (call['colours'] - g.colour.reshape(-1, 3)).abs().max().item() <= 1e-5
    assert torch.equal(call['opacity'], torch.ones_like(call['opacity']))
    # The spread is real: colours ~0.3 (not ~1e-3), drifts near +-1 LR pixel, factors far from the mean.
    grid = torch.stack(torch.meshgrid(torch.arange(2 * h), torch.arange(2 * w), indexing='ij'), -1) / 2 - 0.5
    assert (g.centre[0] - grid).abs().max().item() > 0.9
    assert g.colour.abs().max().item() > 0.2 and g.cholesky[..., 1].min().item() < 0


def _official_formula(run: dict, alpha_max: float) -> torch.Tensor:
    call = run['call']
    centre, conic, _, _ = project_gaussians_2d_reference(call['means2d'], call['cholesky'], call['H'], call['W'])
    return rasterize_sum_reference(centre, conic, call['colours'], call['opacity'], call['H'], call['W'], alpha_max)


@pytest.mark.parametrize('case', list(PARITY_CASES))
def test_render_equals_official_formula(case, parity_runs):
    """Our image equals rasterize_gaussians_sum's formula on the official Gaussians (float64 brute force) to <= 1e-5."""
    run = parity_runs[case]
    official = run['official'].double()
    assert official.shape == run['ours'].shape
    assert torch.allclose(official, _official_formula(run, 1.0), atol=1e-6, rtol=0)  # the stub ran the formula
    assert (run['ours'].double() - official).abs().max().item() <= 1e-5


def test_alpha_clamp_is_the_sum_kernels():
    """A Gaussian at a query point adds its whole colour: rasterize_forward_sum's ``min(1.f, ...)``."""
    gaussians = ContinuousGaussians(
        centre=torch.tensor([[[[0.0, 0.0], [0.0, 0.5]], [[0.5, 0.0], [0.5, 0.5]]]]),
        cholesky=torch.full((1, 2, 2, 3), 0.3),
        colour=torch.ones(1, 2, 2, 3),
    )
    out = gaussian_renderer.render_anchored_gaussians(gaussians.anchored(), torch.zeros(1, 1, 2), rule='gsplat_sum')
    chol = gaussians.cholesky.reshape(-1, 3)
    centre_xy = gaussians.centre.reshape(-1, 2).flip(-1).double()
    _, conic, _, _ = project_gaussians_2d_reference(torch.zeros(4, 2), chol, 2, 2)
    want = rasterize_sum_reference(centre_xy, conic, gaussians.colour.reshape(-1, 3), torch.ones(4), 1, 1)
    assert (out.double().reshape(-1) - want.reshape(-1)).abs().max().item() <= 1e-6


def box_rule_change(means2d, cholesky, colours, height, width) -> torch.Tensor:
    """How much the fork's 3-sigma tile boxes change each pixel of the sum formula, checked against its bound.

    A pair outside the box ``|d_x| > r`` (or ``|d_y| > r``) has ``sigma >= r^2 / (2 Sigma_xx) >= 4.5``
    since ``r = ceil(3 sqrt(v1))`` and ``v1 >= lambda_max >= Sigma_xx``: each dropped term has
    alpha < e^-4.5 (and >= 1/255, or the formula drops it too). Returns |formula - boxed| [H, W].
    """
    opacity = torch.ones(len(means2d))
    centre, conic, radius, valid = project_gaussians_2d_reference(means2d, cholesky, height, width)
    boxes = tile_visits(centre, radius, valid, height, width)
    everything = rasterize_sum_reference(centre, conic, colours, opacity, height, width)
    boxed = rasterize_sum_reference(centre, conic, colours, opacity, height, width, visits=boxes)
    py, px = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    d = centre.unsqueeze(0) - torch.stack([px, py], -1).reshape(-1, 1, 2)
    a, b, c = conic.unbind(-1)
    sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
    inside = (d.abs() <= radius.unsqueeze(-1)).all(-1)
    assert boxes[inside].all()  # every pair within the 3-sigma box is visited
    assert (sigma[~inside] >= 4.5).all()
    dropped = ~boxes & (torch.exp(-sigma) >= ALPHA_MIN)
    bound = (torch.exp(-sigma) * dropped) @ colours.double().abs()
    change = (everything - boxed).abs()
    assert (change.reshape(-1, 3) <= bound + 1e-12).all()
    return change.amax(-1)


def test_tile_boxes_change_a_pixel_by_less_than_exp_minus_4_5_per_gaussian():
    """An elongated Gaussian whose 3-sigma box ends 6.5 px short of the next tile still has alpha 0.005 there."""
    means2d = torch.tensor([[2 * 9.5 / 32 - 1, 2 * 8 / 32 - 1]])  # centre (9.5, 8) in a 32 x 32 image
    cholesky = torch.tensor([[2.0, 0.0, 1.0]])  # Sigma = diag(4, 1): v1 = 4, r = 6
    change = box_rule_change(means2d, cholesky, torch.ones(1, 3), 32, 32)
    assert change[8, 16].item() == pytest.approx(math.exp(-0.5 * 6.5**2 / 4))  # dropped by the fork, kept here
    assert change.max().item() < math.exp(-4.5)


def test_tile_boxes_on_the_official_gaussians(parity_runs):
    """At x4 the boxes change nothing on this field, and no tile holds more than the kernel's 256 Gaussians."""
    call = parity_runs['x4']['call']
    height, width = call['H'], call['W']
    assert box_rule_change(call['means2d'], call['cholesky'], call['colours'], height, width).max().item() == 0
    centre, _, radius, valid = project_gaussians_2d_reference(call['means2d'], call['cholesky'], height, width)
    boxes = tile_visits(centre, radius, valid, height, width)
    assert torch.equal(tile_visits(centre, radius, valid, height, width, TILE_CAPACITY), boxes)


def test_tile_capacity_binds_on_dense_fields(models):
    """At x2 a 16x16 tile is hit by more than 256 Gaussians: the fork then ignores the rest (not reproduced)."""
    _, official, kernels = models
    kernels.calls.clear()
    with torch.no_grad():
        official(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)), torch.tensor([[2.0, 2.0]]))
    call = kernels.calls[0]
    height, width = call['H'], call['W']
    centre, conic, radius, valid = project_gaussians_2d_reference(call['means2d'], call['cholesky'], height, width)
    boxes = tile_visits(centre, radius, valid, height, width)
    capped = tile_visits(centre, radius, valid, height, width, TILE_CAPACITY)
    per_tile = boxes.reshape(height // TILE, TILE, width // TILE, TILE, -1)[:, 0, :, 0].sum(-1)
    assert per_tile.max().item() > TILE_CAPACITY
    colours, opacity = call['colours'], call['opacity']
    full = rasterize_sum_reference(centre, conic, colours, opacity, height, width, visits=boxes)
    cut = rasterize_sum_reference(centre, conic, colours, opacity, height, width, visits=capped)
    assert (full - cut).abs().max().item() > 0.1  # whole Gaussians missing from the lower part of each tile


# ----------------------------------------------------------------------------- pure functions
def test_dictionary_is_the_official_730_entries():
    d = cholesky_dictionary()
    assert d.shape == (730, 3) and torch.equal(d[-1], torch.zeros(3))
    assert torch.equal(d[0], torch.tensor([0.0, -0.86, 0.0])) and torch.equal(d[1], torch.tensor([0.0, -0.86, 0.33]))
    assert torch.equal(d[9], torch.tensor([0.0, -0.36, 0.0])) and d[81, 0].item() == pytest.approx(0.41)
    assert max_window_radius() == 4


def test_conic_of_cholesky_inverts_the_covariance():
    g = torch.Generator().manual_seed(0)
    chol = torch.stack(
        [torch.rand(50, generator=g) + 0.05, torch.randn(50, generator=g), torch.rand(50, generator=g) + 0.01], -1
    )
    opacity, conic = conic_of_cholesky(chol.double())
    cov = covariance_from_cholesky(chol.double())
    d = torch.randn(50, 2, generator=g, dtype=torch.float64)
    want = -0.5 * torch.einsum('ni,nij,nj->n', d, torch.linalg.inv(cov), d)
    a, b, c = conic.unbind(-1)
    got = a * d[:, 0] ** 2 + b * d[:, 0] * d[:, 1] + c * d[:, 1] ** 2
    assert torch.allclose(got, want, rtol=1e-9) and torch.equal(opacity, torch.ones(50, dtype=torch.float64))
    # Row/col: Sigma_xx = l11^2 is the column variance.
    assert torch.allclose(cov[:, 1, 1], chol[:, 0].double() ** 2)
    singular_opacity, singular_conic = conic_of_cholesky(torch.tensor([[0.0, 0.3, 0.2], [0.2, 0.1, 0.0]]))
    assert torch.equal(singular_opacity, torch.zeros(2)) and torch.isfinite(singular_conic).all()


# ----------------------------------------------------------------------------- the interface (tiny model)
def tiny(**overrides) -> ContinuousSR:
    torch.manual_seed(0)
    return ContinuousSR(**{**TINY, **overrides})


def test_shapes_non_square_and_batch_independence():
    net = tiny().eval()
    lq = torch.rand(2, 3, 6, 9)
    with torch.no_grad():
        assert net.upscale(lq, scale=(2, 3.5)).shape == (2, 3, 12, 32)
        out = net.upscale(lq, size=(13, 31))
        alone = net.upscale(lq[1:], size=(13, 31))
        coord = make_coord((13, 31)).unsqueeze(0).expand(2, -1, -1)
        points = net(lq, coord, make_cell((13, 31), coord.shape[1]).unsqueeze(0).expand(2, -1, -1))
        chunked = net.upscale(lq, size=(13, 31), chunk_size=50)
    assert out.shape == (2, 3, 13, 31) and torch.isfinite(out).all()
    assert (out[1:] - alone).abs().max().item() <= 1e-6
    assert (out - points.transpose(1, 2).reshape(2, 3, 13, 31)).abs().max().item() <= 1e-6
    assert (out - chunked).abs().max().item() <= 1e-6


def test_several_sizes_from_one_encoding():
    net = tiny().eval()
    calls = []
    net.encoder.register_forward_hook(lambda *args: calls.append(1))
    lq = torch.rand(1, 3, 7, 5)
    sizes = [(7, 5), (11, 8), (28, 20), (9, 17)]
    with torch.no_grad():
        many = net.upscale_many(lq, sizes)
        assert len(calls) == 1
        one_by_one = [net.upscale(lq, size=s) for s in sizes]
        state = net.encode(lq)
        point = torch.tensor([[[0.1, -0.3]]])
        # the field does not depend on the output size: the same point, any cell, one value
        values = [net.query(state, point, torch.full((1, 1, 2), 2 / n)) for n in (7, 30, 300)]
    assert [tuple(t.shape[-2:]) for t in many] == sizes
    assert all(torch.equal(a, b) for a, b in zip(many, one_by_one))
    assert all(torch.equal(values[0], v) for v in values[1:])


def test_window_is_exact_against_every_gaussian():
    """The data-dependent window keeps every term the 1/255 rule keeps (vs the renderer's brute force)."""
    net = tiny().eval()
    with torch.no_grad():
        net.offset_mlp[-1].weight.mul_(50)  # drifts near +-1 LR pixel
        net.covariance_conv.weight.mul_(20)
        lq = torch.rand(1, 3, 9, 8)
        state = net.encode(lq)
        anchored = state.gaussians.anchored()
        coord = torch.rand(1, 500, 2) * 2 - 1
        windowed = net.query(state, coord, None)
        exhaustive = gaussian_renderer.render_anchored_gaussians_exhaustive(anchored, coord, rule='gsplat_sum')
    assert 1 <= state.table.radius <= max_window_radius()
    assert (windowed - exhaustive).abs().max().item() <= 1e-6


def test_gradients_reach_every_part():
    net = tiny().train()
    lq = torch.rand(2, 3, 5, 6)
    coord = torch.rand(2, 64, 2) * 2 - 1
    out = net(lq, coord, torch.full((2, 64, 2), 2 / 15))
    out.square().mean().backward()
    for name in ('encoder.conv_first', 'upsampler.conv_before_upsample.0', 'upsampler.upsample.2', 'covariance_conv'):
        assert net.get_submodule(name).weight.grad.abs().sum() > 0, name
    for name in ('colour_mlp', 'offset_mlp', 'dictionary_embedding'):
        assert net.get_submodule(name)[0].weight.grad.abs().sum() > 0, name


def test_default_is_edsr_baseline_with_the_official_heads():
    net = ContinuousSR()
    assert type(net.encoder).__name__ == 'EDSRBaselineEncoder' and net.encoder.out_channels == 64
    assert [m.out_features for m in net.colour_mlp if isinstance(m, nn.Linear)] == [512, 1024, 256, 128, 64, 3]
    assert [m.out_features for m in net.dictionary_embedding if isinstance(m, nn.Linear)] == [256, 512, 512, 512, 512]
    assert net.covariance_conv.in_channels == 256 and net.covariance_conv.out_channels == 512
    assert sum(p.numel() for p in net.parameters()) == 5_574_725
    assert 'dictionary' not in net.state_dict()  # a constant, not a parameter


# ----------------------------------------------------------------------------- converter and loading
TINY_SWINIR = {
    'encoder': 'swinir',
    'encoder_opt': {'embed_dim': 12, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'img_size': 8},
}


def official_layout(net: ContinuousSR, encoder: str = 'swinir') -> dict:
    """``net``'s weights in the official checkpoint layout (the inverse of the converter's mapping)."""
    sd = {}
    for key, value in net.state_dict().items():
        if key.startswith('upsampler.'):
            sd['encoder.' + key[len('upsampler.') :]] = value
        elif key.startswith('encoder.'):
            sd[key] = value
        else:
            for official, ours in convert.HEAD_PREFIXES.items():
                if key.startswith(ours):
                    sd[official + key[len(ours) :]] = value
    sd['encoder.conv_last.weight'] = torch.zeros(3, net.upsampler.upsample[0].in_channels, 3, 3)
    sd['encoder.conv_last.bias'] = torch.zeros(3)
    args = {'encoder_spec': {'name': encoder, 'args': {'no_upsampling': True}}, 'cnn_spec': None, 'fc_spec': None}
    return {'model': {'name': 'continuous-gaussian', 'args': args, 'sd': sd}, 'epoch': 1}


def test_converter_round_trip_and_load_model(tmp_path):
    from gaussiansr_arch import load_model

    net = tiny(**TINY_SWINIR).eval()
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(official_layout(net), src)
    assert convert.main([str(src), str(dst)]) == 0
    data = torch.load(dst, weights_only=True)
    recorded = data['network_g']
    # the encoder options as given, plus what detection spells out (mlp_ratio, resi_connection)
    assert TINY_SWINIR['encoder_opt'].items() <= recorded.pop('encoder_opt').items()
    assert recorded == {
        'type': 'ContinuousSR',
        'encoder': 'swinir',
        **{k: v for k, v in TINY.items() if k != 'encoder_opt'},
    }
    assert data['source'] == {'file': 'official.pth'}
    lq = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        want = net.upscale(lq, size=(15, 20))
        assert torch.equal(load_model(str(dst)).upscale(lq, size=(15, 20)), want)
        # a bare state dict: the arch detected from its names and shapes
        bare = tmp_path / 'bare.pth'
        torch.save(net.state_dict(), bare)
        assert torch.equal(load_model(str(bare)).upscale(lq, size=(15, 20)), want)
    # an existing output is kept without --force
    assert _exit_code(convert.main, [str(src), str(dst)]) == 2


def test_converter_errors_are_one_line(tmp_path, capsys):
    net = tiny(**TINY_SWINIR)
    cases = {
        'rdn': official_layout(net, 'rdn'),
        'liif': {'model': {'name': 'liif', 'args': {}, 'sd': {}}},
        'plain': net.state_dict(),
    }
    expected = {
        'rdn': "encoder 'rdn' is not supported: the official RDN encoder gives LR-size features",
        'liif': "model 'liif' is not ContinuousSR",
        'plain': 'not an official ContinuousSR checkpoint',
    }
    for name, ckpt in cases.items():
        src = tmp_path / f'{name}.pth'
        torch.save(ckpt, src)
        capsys.readouterr()
        assert _exit_code(convert.main, [str(src), str(tmp_path / f'{name}_out.pth')]) == 2
        err = capsys.readouterr().err
        assert expected[name] in err and err.count('\n') == 1, err
        assert not (tmp_path / f'{name}_out.pth').exists()


# ----------------------------------------------------------------------------- training through our trainer
def test_short_training_run_through_the_trainer(tmp_path):
    data = th.make_tiny_data(tmp_path / 'data')
    opt = th.train_opt(data, 'csr', total_iter=4, ckpt_freq=4, val_freq=4, model_type='ArbitraryScaleSRModel')
    opt['network_g'] = {'type': 'ContinuousSR', **TINY}
    opt['datasets']['train'].update(scale_min=2.0, scale_max=4.0)
    yml = th.write_yaml(opt, tmp_path / 'train.yml')
    th.run_entry('train', '-opt', yml, '--root', str(tmp_path), timeout=180)
    exp = tmp_path / 'experiments' / 'csr'
    log = th.read_logs(exp, 'train')
    assert 'End of training' in log
    losses = [float(v) for v in re.findall(r'l_pix: ([0-9.e+-]+)', log)]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    psnr = th.metric_values(log, 'psnr')
    assert psnr and all(5 < float(v) < 60 for v in psnr)
    from gaussiansr_arch import load_model

    net = load_model(str(exp / 'models' / 'net_g_latest.pth'))
    assert isinstance(net, ContinuousSR) and net.colour_mlp[0].out_features == 16


def test_onnx_export_with_dynamic_sizes():
    """The traced path (fixed window radius max_window_radius()) exports and matches eager at other sizes."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    from gaussiansr_arch.tools import export_onnx

    net = tiny().eval()
    with torch.no_grad():
        net.offset_mlp[-1].weight.mul_(30)
        net.colour_mlp[-1].bias.fill_(0.5)
    model = export_onnx.to_onnx(net, {'type': 'ContinuousSR', **TINY})
    checks = export_onnx.validate(model, net, threads=1)
    assert checks and all(c['max_diff'] <= 1e-4 for c in checks)


def test_strips_of_lr_rows_give_the_whole_image_gaussians(monkeypatch):
    # Inference computes the Gaussians in strips (bounded memory); they must be the whole image's.
    from gaussiansr_arch.archs import continuoussr_arch

    net = tiny().eval()
    feat = net.encoder(net.encoder_input(torch.rand(1, 3, 11, 7)))
    with torch.no_grad():
        whole = net.gaussians_from_vectors(net.gaussian_vectors(feat))
        monkeypatch.setattr(continuoussr_arch, 'HEAD_STRIP_GAUSSIANS', 2 * 4 * 7)  # 2 LR rows per strip
        strips = net.gaussians_from_features(feat)
    for name in ('centre', 'cholesky', 'colour'):
        assert getattr(strips, name).shape == getattr(whole, name).shape
        assert torch.allclose(getattr(strips, name), getattr(whole, name), atol=1e-6, rtol=0), name


def _exit_code(main, argv) -> int:
    """The exit status of a tool whose run ends in SystemExit (user errors: 2, as every tool)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code
