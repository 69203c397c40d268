"""Tests of the shared Gaussian renderer (gaussiansr_arch/archs/gaussian_renderer.py).

The windowed renderer sums only the Gaussians anchored in a K x K window around each query's
nearest LR pixel; these tests pin that it equals the brute-force sum over every Gaussian of the
image within the stated truncation bound (G = 1 and G = 16, offsets beyond one pixel,
anisotropic covariances, non-square images, queries beyond the border, both rules), that its
hand-written backward is right (gradcheck, and equal to autograd through the traceable path),
that chunking and batching change nothing, and that the traceable path exporters take is the
same function.
"""

import math

import pytest
import torch
from test_gaussian_field import query_points

from gaussiansr_arch.archs import gaussian_renderer as gr
from gaussiansr_arch.archs.coordinates import pixel_position
from gaussiansr_arch.archs.gaussian_renderer import (
    ALPHA_MAX,
    ALPHA_MIN,
    AnchoredGaussians,
    anchored_gaussian_table,
    anchored_truncation_error,
    conic_from_cholesky,
    conic_from_covariance,
    conic_from_sigma_rho,
    covariance_diagonal,
    evaluate_anchored_table,
    render_anchored_gaussians,
    render_anchored_gaussians_exhaustive,
    truncation_bound,
    window_radius,
)

SIGMA_MIN, SIGMA_MAX, RHO_MAX = 0.1, 0.7, 0.95
EPS64 = 1e-11  # float64 summation noise of up to a few thousand terms


def random_gaussians(
    batch, h, w, gaussians, channels, *, max_offset=0.0, opacity_max=1.0, dtype=torch.float64, generator=None
):
    """Random anisotropic Gaussians; offsets uniform in [-max_offset, max_offset] (None when 0).

    A few Gaussians are pinned to sigma_max and |rho| near rho_max, and some offsets to the
    extremes, so the bounds are exercised at their worst.
    """
    g = generator
    shape = (batch, h, w, gaussians)
    sigma = SIGMA_MIN + (SIGMA_MAX - SIGMA_MIN) * torch.rand(*shape, 2, dtype=dtype, generator=g)
    rho = RHO_MAX * (2 * torch.rand(*shape, dtype=dtype, generator=g) - 1)
    sigma[:, ::3, ::2] = SIGMA_MAX
    rho[:, 1::3, ::2] = RHO_MAX * 0.999
    offset = None
    if max_offset:
        offset = max_offset * (2 * torch.rand(*shape, 2, dtype=dtype, generator=g) - 1)
        offset[:, ::2, 1::3, :, 0] = max_offset
        offset[:, 1::2, ::3, :, 1] = -max_offset
    return AnchoredGaussians(
        colour=3 * torch.randn(*shape, channels, dtype=dtype, generator=g),
        opacity=opacity_max * torch.rand(*shape, dtype=dtype, generator=g),
        conic=conic_from_sigma_rho(sigma, rho),
        offset=offset,
    )


def leaves(gaussians: AnchoredGaussians) -> AnchoredGaussians:
    """Copies that require grad (offset None stays None)."""
    fields = (gaussians.colour, gaussians.opacity, gaussians.conic, gaussians.offset)
    return AnchoredGaussians(*(None if t is None else t.detach().clone().requires_grad_(True) for t in fields))


def gradients(gaussians: AnchoredGaussians, out: torch.Tensor, weights: torch.Tensor):
    fields = [t for t in (gaussians.colour, gaussians.opacity, gaussians.conic, gaussians.offset) if t is not None]
    return torch.autograd.grad((out * weights).sum(), fields, retain_graph=True)


CASES = {  # name: (batch, h, w, G, C, max_offset)
    'G1-centred': (2, 6, 9, 1, 4, 0.0),
    'G1-offsets': (2, 9, 6, 1, 3, 1.3),
    'G16-offsets': (1, 7, 10, 16, 3, 1.6),
}


@pytest.mark.parametrize('rule', ['gaussian', 'gsplat_sum'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_windowed_equals_exhaustive_within_the_bound(case, rule):
    """Windowed (window_radius) == every Gaussian of the image, within anchored_truncation_error."""
    batch, h, w, n, c, max_offset = CASES[case]
    g = torch.Generator().manual_seed(len(case) * 31 + len(rule))
    gaussians = random_gaussians(batch, h, w, n, c, max_offset=max_offset, opacity_max=1.5, generator=g)
    coord = query_points(batch, 250, generator=g)
    radius = window_radius(gaussians, rule=rule)
    assert radius < max(h, w) - 1  # the window really truncates
    tolerance = anchored_truncation_error(gaussians, radius, rule) + EPS64

    windowed = render_anchored_gaussians(gaussians, coord, radius=radius, rule=rule)
    exhaustive = render_anchored_gaussians_exhaustive(gaussians, coord, rule=rule)
    error = (windowed - exhaustive).abs().max().item()
    print(f'{case} {rule}: radius {radius}, max |windowed - exhaustive| = {error:.3e}, bound = {tolerance:.3e}')
    assert windowed.shape == (batch, coord.shape[1], c) and windowed.dtype == torch.float64
    assert error <= tolerance
    assert tolerance < 1e-3 * exhaustive.abs().max().item()  # the bound says something
    if rule == 'gsplat_sum':
        assert tolerance == EPS64  # every ignored term is one the rule drops: exact
        alphas = alphas_at(gaussians, coord)
        assert (alphas > ALPHA_MAX).any() and ((alphas > ALPHA_MIN) & (alphas < ALPHA_MAX)).any()
    torch.testing.assert_close(render_anchored_gaussians(gaussians, coord, rule=rule), windowed, rtol=0, atol=0)


def test_smaller_windows_exceed_the_tolerance():
    """The comparison can fail: smaller windows miss more than the bound, yet each respects its own bound."""
    g = torch.Generator().manual_seed(5)
    gaussians = random_gaussians(1, 12, 11, 4, 2, max_offset=1.4, generator=g)
    gaussians.colour = gaussians.colour.abs() + 1  # same sign: ignored tails cannot cancel
    shape = gaussians.opacity.shape
    gaussians.conic = conic_from_sigma_rho(  # every Gaussian as wide as allowed
        torch.full((*shape, 2), SIGMA_MAX, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    )
    coord = query_points(1, 200, generator=g)
    exhaustive = render_anchored_gaussians_exhaustive(gaussians, coord)
    radius = window_radius(gaussians)
    tolerance = anchored_truncation_error(gaussians, radius) + EPS64
    errors = {}
    for smaller in range(radius - 3, radius + 1):
        errors[smaller] = (render_anchored_gaussians(gaussians, coord, radius=smaller) - exhaustive).abs().max().item()
        assert errors[smaller] <= anchored_truncation_error(gaussians, smaller) + EPS64
    assert errors[radius - 2] > tolerance and errors[radius - 3] > 100 * tolerance
    assert errors[radius] < errors[radius - 1] < errors[radius - 2] < errors[radius - 3]


def test_window_radius_formula_and_limits():
    """r = max_j ceil(max|offset_j| + sigma_max_j sqrt(2 ln(opacity_max / tol)) - 0.5), capped at max(h,w) - 1."""
    shape = (1, 20, 30, 2)
    sigma = torch.tensor([0.5, 0.3], dtype=torch.float64).expand(*shape, 2)
    offset = torch.zeros(*shape, 2, dtype=torch.float64)
    offset[0, 3, 4, 1, 0], offset[0, 5, 6, 0, 1] = -1.2, 0.4
    gaussians = AnchoredGaussians(
        colour=torch.ones(*shape, 1, dtype=torch.float64),
        opacity=torch.full(shape, 0.8, dtype=torch.float64),
        conic=conic_from_sigma_rho(sigma, torch.zeros(shape, dtype=torch.float64)),
        offset=offset,
    )
    reach = math.sqrt(2 * math.log(0.8 / 1e-4))
    want = max(math.ceil(1.2 + 0.5 * reach - 0.5), math.ceil(0.4 + 0.3 * reach - 0.5))
    assert window_radius(gaussians, tolerance=1e-4) == want == 3
    # 'gsplat_sum' defaults to 1/255: smaller (every ignored term is dropped by the rule anyway).
    assert window_radius(gaussians, rule='gsplat_sum') <= window_radius(gaussians)
    assert window_radius(gaussians, tolerance=0.9) == 0  # no weight can exceed 0.9 > opacity
    gaussians.offset = offset * 100  # far-flung Gaussians: the window covers the whole image
    assert window_radius(gaussians) == 29
    for bad in (0.0, -1.0, float('nan')):
        with pytest.raises(ValueError, match='tolerance'):
            window_radius(gaussians, tolerance=bad)


def test_truncation_bound_generalises_the_field_bound():
    """No offsets and G = 1: the field's bound; it grows with the offset and G, shrinks with the radius."""
    for sigma in (0.35, 0.7):
        for radius in range(5):
            old = sum(8 * k * math.exp(-0.5 * (k - 0.5) ** 2 / sigma**2) for k in range(radius + 1, radius + 64))
            assert truncation_bound(sigma, radius) == pytest.approx(old, rel=1e-12, abs=1e-300)
    assert truncation_bound(0.7, 4, 1.0) > truncation_bound(0.7, 4, 0.5) > truncation_bound(0.7, 4)
    assert truncation_bound(0.7, 4, 1.0, 16) == pytest.approx(16 * truncation_bound(0.7, 4, 1.0))
    assert truncation_bound(0.7, 6, 1.0) < truncation_bound(0.7, 5, 1.0)
    # Per-axis values: the worse axis decides.
    assert truncation_bound((0.7, 0.2), 3, (0.0, 0.0)) == pytest.approx(truncation_bound(0.7, 3))
    assert truncation_bound(math.inf, 3) == math.inf


def test_conic_helpers_match_the_inverse_covariance():
    """-0.5 d^T Sigma^-1 d from sigma/rho, a covariance and a Cholesky factor, against torch.linalg.inv."""
    g = torch.Generator().manual_seed(3)
    n = 64
    d = torch.randn(n, 2, dtype=torch.float64, generator=g)
    sigma = 0.1 + torch.rand(n, 2, dtype=torch.float64, generator=g)
    rho = 0.95 * (2 * torch.rand(n, dtype=torch.float64, generator=g) - 1)
    cov = torch.stack(
        [
            torch.stack([sigma[:, 0] ** 2, rho * sigma[:, 0] * sigma[:, 1]], -1),
            torch.stack([rho * sigma[:, 0] * sigma[:, 1], sigma[:, 1] ** 2], -1),
        ],
        -2,
    )
    want = -0.5 * torch.einsum('ni,nij,nj->n', d, torch.linalg.inv(cov), d)

    def exponent(conic):
        a, b, c = conic.unbind(-1)
        return a * d[:, 0] ** 2 + b * d[:, 0] * d[:, 1] + c * d[:, 1] ** 2

    lower = torch.linalg.cholesky(cov)
    chol = torch.stack([lower[:, 0, 0], lower[:, 1, 0], lower[:, 1, 1]], -1)
    for conic in (conic_from_sigma_rho(sigma, rho), conic_from_covariance(cov), conic_from_cholesky(chol)):
        torch.testing.assert_close(exponent(conic), want, rtol=1e-10, atol=1e-12)
    # Any lower-triangular factor (negative diagonal too) gives L L^T's conic.
    signed = chol * torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    full = torch.zeros(n, 2, 2, dtype=torch.float64)
    full[:, 0, 0], full[:, 1, 0], full[:, 1, 1] = signed.unbind(-1)
    torch.testing.assert_close(conic_from_cholesky(signed), conic_from_covariance(full @ full.transpose(1, 2)))
    torch.testing.assert_close(covariance_diagonal(conic_from_covariance(cov)), sigma**2, rtol=1e-10, atol=0)
    assert covariance_diagonal(torch.tensor([0.5, 0.0, -1.0])).isinf().all()  # not a Gaussian


@pytest.mark.parametrize(
    'rule,offsets', [('gaussian', False), ('gaussian', True), ('gsplat_sum', False), ('gsplat_sum', True)]
)
def test_gradcheck(rule, offsets):
    """Hand-written backward vs finite differences (float64, several chunks; gsplat_sum away from its thresholds)."""
    for seed in range(100):  # the first sample whose alphas are all away from 1/255 and the clamp
        g = torch.Generator().manual_seed(seed)
        gaussians = random_gaussians(1, 3, 4, 2, 2, max_offset=1.2 * offsets, opacity_max=2.5, generator=g)
        coord = query_points(1, 4, generator=g)[:, :9]
        raw = alphas_at(gaussians, coord)
        away = (raw - ALPHA_MIN).abs().min() > 1e-4 and (raw - ALPHA_MAX).abs().min() > 1e-4
        if rule == 'gaussian' or (away and (raw > ALPHA_MAX).any() and (raw < ALPHA_MIN).any()):
            break  # (gsplat_sum: clamped and dropped terms present)
    else:
        pytest.fail('no sample away from the gsplat_sum thresholds')
    inputs = [t for t in (gaussians.colour, gaussians.opacity, gaussians.conic, gaussians.offset) if t is not None]
    inputs = tuple(t.clone().requires_grad_(True) for t in inputs)

    def render(*fields):
        return render_anchored_gaussians(AnchoredGaussians(*fields), coord, radius=2, rule=rule, chunk_size=4)

    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def alphas_at(gaussians: AnchoredGaussians, coord: torch.Tensor) -> torch.Tensor:
    """[B,Q,h*w*G] opacity * exp(E) of every Gaussian at every query, from the covariance (not the renderer)."""
    b, h, w, n, _ = gaussians.colour.shape
    pos = pixel_position(coord, (h, w)).unsqueeze(2)
    anchors = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij'), -1).to(pos.dtype)
    centres = anchors.view(1, h, w, 1, 2) + (gaussians.offset if gaussians.offset is not None else 0)
    d = pos - centres.expand(b, h, w, n, 2).reshape(b, 1, -1, 2)
    a, bb, c = gaussians.conic.reshape(b, 1, -1, 3).unbind(-1)
    inverse = torch.stack([torch.stack([-2 * a, -bb], -1), torch.stack([-bb, -2 * c], -1)], -2)  # Sigma^-1
    quad = torch.einsum('bqni,bqnij,bqnj->bqn', d, inverse.expand(b, d.shape[1], -1, 2, 2), d)
    return gaussians.opacity.reshape(b, 1, -1) * torch.exp(-0.5 * quad)


@pytest.mark.parametrize('rule', ['gaussian', 'gsplat_sum'])
@pytest.mark.parametrize('fold', [True, False], ids=['fold', 'direct'])
def test_backward_equals_autograd_of_the_traceable_path(monkeypatch, rule, fold):
    """Hand-written backward (both accumulation strategies) == autograd through the exporters' path."""
    g = torch.Generator().manual_seed(23)
    gaussians = random_gaussians(2, 5, 7, 3, 4, max_offset=1.5, opacity_max=1.5, generator=g)
    coord = query_points(2, 60, generator=g)
    weights = torch.randn(2, coord.shape[1], 4, dtype=torch.float64, generator=g)
    if not fold:
        monkeypatch.setattr(gr, 'FOLD_BUFFER_ELEMENTS', 0)
    chunked = leaves(gaussians)
    out = render_anchored_gaussians(chunked, coord, radius=3, rule=rule, chunk_size=16)
    want = gradients(chunked, out, weights)

    traced = leaves(gaussians)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    monkeypatch.setattr(gr._AnchoredRender, 'apply', None)  # the chunked path must not run
    out_traced = render_anchored_gaussians(traced, coord, radius=3, rule=rule, chunk_size=16)
    torch.testing.assert_close(out_traced, out, rtol=0, atol=1e-12)
    for got, expected in zip(gradients(traced, out_traced, weights), want):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match='fixed radius'):
        render_anchored_gaussians(gaussians, coord, rule=rule)


def test_chunk_size_invariance():
    """Chunk boundaries change neither the values nor the gradients."""
    g = torch.Generator().manual_seed(29)
    gaussians = leaves(random_gaussians(2, 5, 6, 4, 3, max_offset=1.1, generator=g))
    coord = query_points(2, 30, generator=g)
    weights = torch.randn(2, coord.shape[1], 3, dtype=torch.float64, generator=g)
    table = anchored_gaussian_table(gaussians, 3)
    whole = evaluate_anchored_table(table, coord, chunk_size=10**6)
    whole_grad = gradients(gaussians, whole, weights)
    for chunk in (1, 7, 41, None):
        part = evaluate_anchored_table(table, coord, chunk_size=chunk)
        torch.testing.assert_close(part, whole, rtol=0, atol=1e-13)
        for got, want in zip(gradients(gaussians, part, weights), whole_grad):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match='chunk_size'):
        evaluate_anchored_table(table, coord, chunk_size=0)


def test_batch_independence():
    """Each image renders as it would alone, and its queries send no gradient to the other images."""
    g = torch.Generator().manual_seed(31)
    gaussians = leaves(random_gaussians(3, 6, 5, 2, 2, max_offset=0.8, generator=g))
    coord = query_points(3, 40, generator=g)
    together = render_anchored_gaussians(gaussians, coord, radius=2, rule='gsplat_sum', chunk_size=13)
    for i in range(3):
        alone = AnchoredGaussians(
            gaussians.colour[i : i + 1],
            gaussians.opacity[i : i + 1],
            gaussians.conic[i : i + 1],
            gaussians.offset[i : i + 1],
        )
        single = render_anchored_gaussians(alone, coord[i : i + 1], radius=2, rule='gsplat_sum', chunk_size=13)
        torch.testing.assert_close(together[i : i + 1], single, rtol=0, atol=1e-14)
    mask = torch.zeros_like(together)
    mask[1] = 1
    for grad in gradients(gaussians, together, mask):
        assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_float32_under_autocast():
    """bf16 inputs under autocast: laid out and summed in float32, equal to the float32 evaluation."""
    g = torch.Generator().manual_seed(37)
    gaussians = random_gaussians(1, 5, 6, 2, 3, max_offset=0.5, dtype=torch.float32, generator=g)
    half = AnchoredGaussians(*(t.to(torch.bfloat16) for t in (gaussians.colour, gaussians.opacity, gaussians.conic)))
    half.offset = gaussians.offset.to(torch.bfloat16)
    coord = torch.rand(1, 50, 2, generator=g) * 2 - 1
    with torch.autocast('cpu', dtype=torch.bfloat16):
        table = anchored_gaussian_table(half, 2, 'gsplat_sum')
        got = evaluate_anchored_table(table, coord)
    assert table.values.dtype == torch.float32 and got.dtype == torch.float32
    full = AnchoredGaussians(*(t.float() for t in (half.colour, half.opacity, half.conic, half.offset)))
    assert torch.equal(got, render_anchored_gaussians(full, coord, radius=2, rule='gsplat_sum'))


def test_errors_are_one_line():
    g = torch.Generator().manual_seed(41)
    gaussians = random_gaussians(1, 3, 3, 2, 2, generator=g)
    coord = torch.zeros(1, 4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="rule must be one of .*'gaussian'"):
        render_anchored_gaussians(gaussians, coord, radius=1, rule='alpha')
    bad = AnchoredGaussians(gaussians.colour, gaussians.opacity[..., :1], gaussians.conic)
    with pytest.raises(ValueError, match=r'AnchoredGaussians.opacity must be \[B,h,w,G\]') as err:
        render_anchored_gaussians(bad, coord, radius=1)
    assert '\n' not in str(err.value)
    with pytest.raises(ValueError, match='radius'):
        anchored_gaussian_table(gaussians, -1)


def test_onnx_export_matches_eager(tmp_path):
    """A real ONNX export (dynamo exporter; symbolic query count and LR size) runs in onnxruntime
    and matches eager at another query count and LR size than traced."""
    pytest.importorskip('onnxscript')
    ort = pytest.importorskip('onnxruntime')

    class Render(torch.nn.Module):
        def forward(self, colour, opacity, conic, offset, coord):
            gaussians = AnchoredGaussians(colour, opacity, conic, offset)
            return render_anchored_gaussians(gaussians, coord, radius=2, rule='gsplat_sum')

    def inputs(h, w, queries, seed):
        g = torch.Generator().manual_seed(seed)
        gaussians = random_gaussians(1, h, w, 3, 3, max_offset=0.9, opacity_max=1.5, dtype=torch.float32, generator=g)
        coord = torch.rand(1, queries, 2, generator=g) * 2.1 - 1.05
        return gaussians.colour, gaussians.opacity, gaussians.conic, gaussians.offset, coord

    h, w, q = (torch.export.Dim(name, min=2, max=512) for name in ('h', 'w', 'q'))
    shapes = ({1: h, 2: w}, {1: h, 2: w}, {1: h, 2: w}, {1: h, 2: w}, {1: q})
    path = tmp_path / 'render.onnx'
    example = inputs(5, 6, 40, 43)
    torch.onnx.export(Render().eval(), example, str(path), dynamo=True, dynamic_shapes=shapes, verbose=False)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    for size in ((5, 6), (9, 4)):
        other = inputs(*size, 77, 44)
        got = session.run(None, dict(zip(names, [t.numpy() for t in other])))[0]
        want = Render()(*other)
        assert got.shape == tuple(want.shape)
        assert abs(got - want.numpy()).max() <= 1e-5
