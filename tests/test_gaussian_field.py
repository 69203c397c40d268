"""Tests of the continuous Gaussian field (gaussiansr_arch/archs/gaussian_field.py).

The truncated renderer sums only the K x K LR neighbourhood of each query; these tests pin
that it equals the brute-force sum over every Gaussian of the image within the analytic
truncation bound, over the whole allowed parameter range, and that it is differentiable.
"""

import math

import pytest
import torch

from gaussiansr_arch.archs import gaussian_renderer
from gaussiansr_arch.archs.coordinates import pixel_position
from gaussiansr_arch.archs.gaussian_field import (
    evaluate_gaussian_table,
    field_gaussians,
    gaussian_table,
    gaussian_weight,
    render_gaussian_field,
    render_gaussian_field_exhaustive,
    truncation_bound,
)
from gaussiansr_arch.archs.gaussian_renderer import render_anchored_gaussians, render_anchored_gaussians_exhaustive

SIGMA_MIN, SIGMA_MAX, RHO_MAX = 0.1, 0.7, 0.95  # the GaussianSR defaults (selective_splatting.py)
EPS64 = 1e-12  # float64 summation noise of <= 49 terms of magnitude <= max|o v|


def random_field(
    batch: int,
    channels: int,
    h: int,
    w: int,
    *,
    extreme: bool = False,
    dtype=torch.float64,
    generator: torch.Generator | None = None,
):
    """Random per-pixel Gaussians covering the allowed range.

    Returns:
        tuple: amplitude [B,C,h,w], sigma [B,2,h,w], rho [B,1,h,w], opacity [B,1,h,w].
        With ``extreme`` every sigma is sigma_max and |rho| is within 1e-3 of rho_max.
    """
    g = generator
    amplitude = torch.randn(batch, channels, h, w, dtype=dtype, generator=g) * 3
    if extreme:
        sigma = torch.full((batch, 2, h, w), SIGMA_MAX, dtype=dtype)
        sign = torch.where(torch.rand(batch, 1, h, w, generator=g) < 0.5, -1.0, 1.0).to(dtype)
        rho = sign * (RHO_MAX - 1e-3 * torch.rand(batch, 1, h, w, dtype=dtype, generator=g))
    else:
        sigma = SIGMA_MIN + (SIGMA_MAX - SIGMA_MIN) * torch.rand(batch, 2, h, w, dtype=dtype, generator=g)
        rho = RHO_MAX * (2 * torch.rand(batch, 1, h, w, dtype=dtype, generator=g) - 1)
        # Pin a few pixels to the ends of the range: sigma = sigma_max and |rho| near rho_max.
        sigma[:, :, ::3, ::2] = SIGMA_MAX
        rho[:, :, 1::3, ::2] = RHO_MAX * 0.999
        rho[:, :, 2::3, 1::2] = -RHO_MAX * 0.999
    opacity = torch.rand(batch, 1, h, w, dtype=dtype, generator=g)
    return amplitude, sigma, rho, opacity


def query_points(batch: int, num_random: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """[B,Q,2] random non-grid points plus corners, borders and points just outside the image.

    The pixel-centre hull is [-1 + 1/h, 1 - 1/h]; the image border is +-1; we go to +-1.05.
    """
    inner = torch.rand(batch, num_random, 2, dtype=dtype, generator=generator) * 2.1 - 1.05
    special = torch.tensor(
        [
            [-1.0, -1.0],
            [-1.0, 1.0],
            [1.0, -1.0],
            [1.0, 1.0],  # image corners
            [-1.05, 0.3],
            [0.2, 1.05],
            [1.05, 1.05],
            [-1.04, -1.02],  # slightly outside
            [0.0, -1.0],
            [1.0, 0.1234],
            [-0.999, 0.5],
            [0.77, 0.999],
        ],
        dtype=dtype,
    )
    return torch.cat([inner, special.expand(batch, -1, -1)], dim=1)


def max_premultiplied_amplitude(amplitude: torch.Tensor, opacity: torch.Tensor) -> float:
    return (amplitude * opacity).abs().max().item()


@pytest.mark.parametrize('extreme', [False, True], ids=['random-range', 'sigma-max-rho-max'])
@pytest.mark.parametrize('size', [(6, 9), (11, 7)])
def test_truncated_field_equals_exhaustive_sum(extreme, size):
    """Truncated (radius 3) == sum over ALL Gaussians, within truncation_bound * max|o v| + eps."""
    g = torch.Generator().manual_seed(1234 + size[0])
    h, w = size
    amplitude, sigma, rho, opacity = random_field(2, 5, h, w, extreme=extreme, generator=g)
    coord = query_points(2, 300, generator=g)
    radius = 3
    tolerance = truncation_bound(SIGMA_MAX, radius) * max_premultiplied_amplitude(amplitude, opacity) + EPS64

    truncated = render_gaussian_field(amplitude, sigma, rho, opacity, coord, radius=radius)
    exhaustive = render_gaussian_field_exhaustive(amplitude, sigma, rho, opacity, coord)
    error = (truncated - exhaustive).abs().max().item()
    print(f'field {size} extreme={extreme}: max |truncated - exhaustive| = {error:.3e}, bound = {tolerance:.3e}')
    assert truncated.shape == (2, coord.shape[1], 5)
    assert torch.isfinite(truncated).all()
    assert error <= tolerance
    # The bound must also be meaningful: far below the field magnitude.
    assert tolerance < 1e-3 * exhaustive.abs().max().item()


def test_smaller_radius_exceeds_the_tolerance():
    """The comparison can fail: radius 1 with wide Gaussians misses far more than the radius-3 bound."""
    g = torch.Generator().manual_seed(7)
    amplitude, sigma, rho, opacity = random_field(1, 4, 8, 8, extreme=True, generator=g)
    amplitude = amplitude.abs() + 1  # same sign: the ignored tails cannot cancel
    coord = query_points(1, 200, generator=g)
    tolerance = truncation_bound(SIGMA_MAX, 3) * max_premultiplied_amplitude(amplitude, opacity) + EPS64
    exhaustive = render_gaussian_field_exhaustive(amplitude, sigma, rho, opacity, coord)
    error_r1, error_r0 = (
        (render_gaussian_field(amplitude, sigma, rho, opacity, coord, r) - exhaustive).abs().max() for r in (1, 0)
    )
    assert error_r1.item() > 100 * tolerance
    assert error_r0.item() > error_r1.item()
    # ... and each smaller radius still respects its own (looser) bound.
    for radius, error in ((1, error_r1), (0, error_r0)):
        bound = truncation_bound(SIGMA_MAX, radius) * max_premultiplied_amplitude(amplitude, opacity)
        assert error.item() <= bound + EPS64


def test_truncation_bound_values():
    """The bound decreases with the radius and is negligible for the default configuration."""
    bounds = [truncation_bound(SIGMA_MAX, r) for r in range(5)]
    assert all(a > b for a, b in zip(bounds, bounds[1:]))
    assert bounds[3] < 1.2e-4
    assert truncation_bound(0.35, 3) < 1e-15


def test_gaussian_weight_matches_inverse_covariance():
    """exp(-0.5 d^T Sigma^-1 d) with Sigma = [[sy^2, rho sy sx], [rho sy sx, sx^2]]."""
    g = torch.Generator().manual_seed(3)
    offset = torch.randn(50, 2, dtype=torch.float64, generator=g)
    sigma = 0.1 + torch.rand(50, 2, dtype=torch.float64, generator=g)
    rho = 0.95 * (2 * torch.rand(50, dtype=torch.float64, generator=g) - 1)
    cov = torch.stack(
        [
            torch.stack([sigma[:, 0] ** 2, rho * sigma[:, 0] * sigma[:, 1]], -1),
            torch.stack([rho * sigma[:, 0] * sigma[:, 1], sigma[:, 1] ** 2], -1),
        ],
        -2,
    )
    quad = torch.einsum('ni,nij,nj->n', offset, torch.linalg.inv(cov), offset)
    torch.testing.assert_close(gaussian_weight(offset, sigma, rho), torch.exp(-0.5 * quad), rtol=1e-10, atol=1e-12)


def test_gaussians_are_centred_on_lr_pixel_centres():
    """One non-zero Gaussian peaks (value o * v, peak-normalised) exactly at its LR pixel centre."""
    h, w = 5, 6
    amplitude = torch.zeros(1, 1, h, w, dtype=torch.float64)
    amplitude[0, 0, 2, 3] = 2.0
    sigma = torch.full((1, 2, h, w), 0.4, dtype=torch.float64)
    rho = torch.zeros(1, 1, h, w, dtype=torch.float64)
    opacity = torch.full((1, 1, h, w), 0.5, dtype=torch.float64)
    centre = torch.tensor([[[-1 + (2 * 2 + 1) / h, -1 + (2 * 3 + 1) / w]]], dtype=torch.float64)
    expected = torch.tensor([[[2.0, 3.0]]], dtype=torch.float64)
    torch.testing.assert_close(pixel_position(centre, (h, w)), expected)
    peak = render_gaussian_field(amplitude, sigma, rho, opacity, centre)
    assert peak.item() == pytest.approx(1.0, abs=1e-12)
    # Half an LR pixel to the right along the column axis: exp(-0.5 (0.5 / 0.4)^2).
    shifted = centre + torch.tensor([0.0, 1.0 / w], dtype=torch.float64)
    value = render_gaussian_field(amplitude, sigma, rho, opacity, shifted).item()
    assert value == pytest.approx(math.exp(-0.5 * (0.5 / 0.4) ** 2), abs=1e-12)


@pytest.mark.parametrize('radius', [1, 3])
def test_field_gradcheck(radius):
    """Analytic gradients w.r.t. amplitude, sigma, rho and opacity match finite differences."""
    g = torch.Generator().manual_seed(11)
    amplitude, sigma, rho, opacity = random_field(1, 2, 4, 5, generator=g)
    coord = query_points(1, 6, generator=g)[:, :10]
    inputs = tuple(t.clone().requires_grad_(True) for t in (amplitude, sigma, rho, opacity))

    def field(a, s, r, o):
        return render_gaussian_field(a, s, r, o, coord, radius=radius)

    assert torch.autograd.gradcheck(field, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_chunked_evaluation_is_chunk_invariant_and_differentiable():
    """Chunk boundaries change nothing: values equal, and gradcheck holds across several chunks."""
    g = torch.Generator().manual_seed(21)
    amplitude, sigma, rho, opacity = random_field(2, 3, 5, 6, generator=g)
    coord = query_points(2, 30, generator=g)
    table = gaussian_table(amplitude, sigma, rho, opacity, 3)
    whole = evaluate_gaussian_table(table, coord, 3, chunk_size=10_000)
    for chunk in (1, 7, 41):
        torch.testing.assert_close(
            evaluate_gaussian_table(table, coord, 3, chunk_size=chunk), whole, rtol=0, atol=1e-13
        )
    small = query_points(1, 4, generator=g)  # 16 points, chunks of 5
    inputs = tuple(t[:1].clone().requires_grad_(True) for t in (amplitude, sigma, rho, opacity))

    def field(a, s, r, o):
        return evaluate_gaussian_table(gaussian_table(a, s, r, o, 2), small, 2, chunk_size=5)

    assert torch.autograd.gradcheck(field, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='chunk_size'):
        evaluate_gaussian_table(table, coord, 3, chunk_size=0)


def windowed_field_reference(amplitude, sigma, rho, opacity, coord, radius):
    """The field's definition written directly: each query sums gaussian_weight * o * v over the
    (2r+1)^2 LR pixels (inside the image) around its nearest pixel. [B,Q,C]."""
    b, c, h, w = amplitude.shape
    pos = pixel_position(coord, (h, w))  # [B,Q,2]
    limit = pos.new_tensor([h - 1, w - 1])
    nearest = torch.minimum(torch.floor(pos + 0.5).clamp_min(0), limit)
    values = (amplitude * opacity).flatten(2).transpose(1, 2)  # [B,hw,C]
    sigma, rho = sigma.flatten(2).transpose(1, 2), rho.flatten(2)[:, 0]  # [B,hw,2], [B,hw]
    out = torch.zeros(b, coord.shape[1], c, dtype=amplitude.dtype)
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            pixel = nearest + pos.new_tensor([dr, dc])
            inside = ((pixel >= 0) & (pixel <= limit)).all(-1)
            index = (pixel[..., 0].clamp(0, h - 1) * w + pixel[..., 1].clamp(0, w - 1)).long()  # [B,Q]
            value, scale = (t.gather(1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1])) for t in (values, sigma))
            weight = gaussian_weight(pos - pixel, scale, rho.gather(1, index)) * inside
            out += weight.unsqueeze(-1) * value
    return out


@pytest.mark.parametrize('radius', [1, 3])
def test_field_is_the_renderer_special_case(monkeypatch, radius):
    """The field through the shared renderer (G = 1, no offsets, rule 'gaussian') equals its definition,
    the renderer's own exhaustive reference within the bound, and the exporters' traceable path."""
    g = torch.Generator().manual_seed(99)
    field = random_field(2, 3, 7, 10, generator=g)
    coord = query_points(2, 150, generator=g)
    table = gaussian_table(*field, radius)
    got = evaluate_gaussian_table(table, coord, radius, chunk_size=37)
    torch.testing.assert_close(got, windowed_field_reference(*field, coord, radius), rtol=0, atol=1e-12)
    gaussians = field_gaussians(*field)
    assert gaussians.gaussians_per_pixel == 1 and gaussians.offset is None
    torch.testing.assert_close(got, render_anchored_gaussians(gaussians, coord, radius=radius), rtol=0, atol=0)
    tolerance = truncation_bound(SIGMA_MAX, radius) * max_premultiplied_amplitude(field[0], field[3]) + EPS64
    assert (got - render_anchored_gaussians_exhaustive(gaussians, coord)).abs().max().item() <= tolerance

    inputs = [t.clone().requires_grad_(True) for t in field]
    chunked = evaluate_gaussian_table(gaussian_table(*inputs, radius), coord, radius, chunk_size=37)
    want = torch.autograd.grad(chunked.square().sum(), inputs)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    monkeypatch.setattr(gaussian_renderer._AnchoredRender, 'apply', None)  # the chunked path must not run
    traced = evaluate_gaussian_table(gaussian_table(*inputs, radius), coord, radius, chunk_size=37)
    torch.testing.assert_close(traced, chunked, rtol=0, atol=1e-12)
    for grad, expected in zip(torch.autograd.grad(traced.square().sum(), inputs), want):
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-10)
