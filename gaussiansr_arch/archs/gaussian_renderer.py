"""The shared Gaussian renderer: G 2D Gaussians anchored at every LR pixel, summed at arbitrary points.

Every Gaussian arch renders through this module:

- GaussianSR (``archs/gaussian_field.py``): one Gaussian per LR pixel, centred on it (no offset),
  a fixed window radius of 3, rule ``'gaussian'``;
- GSASR: 16 Gaussians per LR pixel with unbounded learned offsets, rule ``'gaussian'``;
- ContinuousSR: 4 Gaussians per LR pixel, offsets within one LR pixel, rule ``'gsplat_sum'``.

Units are LR pixels in (row, col) order, pixel ``m``'s centre at ``m``
(:func:`~gaussiansr_arch.archs.coordinates.pixel_position`). Gaussian ``g`` anchored at pixel
``m`` is centred at ``mu = m + offset`` and weighs ``exp(E)`` at a point ``p``, with
``E = a dy^2 + b dy dx + c dx^2 = -0.5 d^T Sigma^-1 d`` and ``d = (dy, dx) = p - mu`` (its
"conic" ``(a, b, c)``). Rules:

- ``'gaussian'``: ``out(p) = sum opacity * exp(E) * colour`` (GaussianSR, GSASR);
- ``'gsplat_sum'``: ``alpha = min(1, opacity * exp(E))``, terms with ``alpha < 1/255`` are
  dropped, ``out(p) = sum alpha * colour`` (the gsplat fork's ``rasterize_gaussians_sum``).

**Window.** A point sums only the Gaussians anchored at the ``K x K`` LR pixels (``K = 2r + 1``)
within Chebyshev distance ``r`` of its nearest LR pixel (the nearest border pixel for points
beyond the image). :func:`truncation_bound` bounds what that ignores, :func:`window_radius`
picks ``r`` from the Gaussians (largest offset and widest Gaussian) for a tolerance, and
:func:`render_anchored_gaussians_exhaustive` is the brute-force reference (every Gaussian).

**Evaluation.** :func:`anchored_gaussian_table` lays the Gaussians out once per image, one row
per LR pixel holding all G Gaussians' fields, with ``r`` zero rows around the image (Gaussians
that do not exist: zero colour and opacity), so each window is a plain row lookup.
:func:`evaluate_anchored_table` evaluates points in chunks with a hand-written backward that
recomputes each chunk: memory O(chunk * K^2 * G) beyond the result and the table's gradient,
forward and backward, whatever the image size. Under ONNX export / ``torch.export`` /
``torch.jit.trace`` the same math runs as one vectorised evaluation of ordinary differentiable
ops (no Python loop over chunks, no ``autograd.Function``), which exporters can record.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gaussiansr_arch.archs.coordinates import pixel_grid, pixel_position

RULES = ('gaussian', 'gsplat_sum')
# 'gsplat_sum': alpha is clamped to ALPHA_MAX and terms below ALPHA_MIN are dropped.
ALPHA_MIN, ALPHA_MAX = 1 / 255, 1.0  # the fork's sum kernel (its compositing kernel clamps at 0.999)
# window_radius's default per-Gaussian weight tolerance. Under 'gsplat_sum' every term the window
# ignores at 1/255 is one the rule drops anyway, so the window is exact there.
DEFAULT_TOLERANCE = {'gaussian': 1e-5, 'gsplat_sum': ALPHA_MIN}
# Default chunk, as (point, Gaussian, field) elements of the gathered window: on a CPU the chunk's
# temporaries (~2 MB) stay in cache; a GPU wants few, large launches instead.
CHUNK_ELEMENTS = {'cpu': 2**19, 'other': 2**25}
# The backward sums each point's whole window gradient into a per-pixel buffer [B*h*w, K*K*row]
# and folds it onto the table once (one row add per point). When that buffer would exceed this
# many elements (large K, many Gaussians per pixel), window rows are added to the table's gradient
# directly instead (one row add per point and window pixel; memory O(table)). GaussianSR's
# training sizes always fold: at 7 points per LR pixel (B=4, 48x48, r=3) direct adds took 307 ms
# against fold's 244 ms (forward + backward, one CPU thread).
FOLD_BUFFER_ELEMENTS = 2**26


@dataclass
class AnchoredGaussians:
    """G Gaussians anchored at every pixel of a B x h x w LR grid.

    Attributes:
        colour (Tensor): [B,h,w,G,C] value each Gaussian adds (features or RGB), not multiplied
            by opacity.
        opacity (Tensor): [B,h,w,G].
        conic (Tensor): [B,h,w,G,3] (a, b, c): exponent ``E = a dy^2 + b dy dx + c dx^2 =
            -0.5 d^T Sigma^-1 d``, d = (dy, dx) = query - centre in LR pixels (see the
            ``conic_from_*`` helpers).
        offset (Tensor | None): [B,h,w,G,2] centre - anchor pixel centre in LR pixels, (row, col);
            None: every Gaussian is centred on its anchor pixel.
    """

    colour: torch.Tensor
    opacity: torch.Tensor
    conic: torch.Tensor
    offset: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the LR grid."""
        return int(self.colour.shape[1]), int(self.colour.shape[2])

    @property
    def gaussians_per_pixel(self) -> int:
        return int(self.colour.shape[3])

    @property
    def channels(self) -> int:
        return int(self.colour.shape[4])

    def check(self) -> 'AnchoredGaussians':
        """Return self, or raise ValueError (one line) naming the field whose shape is wrong."""
        if self.colour.dim() != 5:
            raise ValueError(f'AnchoredGaussians.colour must be [B,h,w,G,C], got shape {tuple(self.colour.shape)}')
        lead = tuple(self.colour.shape[:4])
        fields = (('opacity', self.opacity, ()), ('conic', self.conic, (3,)), ('offset', self.offset, (2,)))
        for name, tensor, tail in fields:
            if tensor is not None and tuple(tensor.shape) != lead + tail:
                want = '[B,h,w,G' + ''.join(f',{n}' for n in tail) + ']'
                raise ValueError(
                    f'AnchoredGaussians.{name} must be {want} = {lead + tail} (from colour), got {tuple(tensor.shape)}'
                )
        return self


def field_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype Gaussians are laid out and summed in: float32 for half types, else ``dtype``.

    Under mixed precision (autocast) the inputs arrive in bf16/fp16. The renderer stays in
    float32 there: 1 / (1 - rho^2) and 1 / sigma^2 overflow fp16's range for sharp kernels, bf16's
    8-bit mantissa puts ~0.4 % error on the exponent a dy^2 + b dy dx + c dx^2 (i.e. on every
    weight exp(.)), and each query sums tens to thousands of weighted terms. The cost is small
    next to the decoder, which autocast runs in half precision.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_rule(rule: str) -> str:
    """Return ``rule``, or raise ValueError naming it."""
    if rule not in RULES:
        raise ValueError(f'rule must be one of {list(RULES)}, got {rule!r}')
    return rule


# ----------------------------------------------------------------------------- conics
def conic_from_sigma_rho(sigma: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Conic of ``Sigma = [[s_y^2, rho s_y s_x], [rho s_y s_x, s_x^2]]``.

    Args:
        sigma (Tensor): [..., 2] (sigma_y, sigma_x) in LR pixels, > 0.
        rho (Tensor): [...] correlation, |rho| < 1.

    Returns:
        Tensor: [..., 3] (a, b, c) with ``a dy^2 + b dy dx + c dx^2 = -0.5 d^T Sigma^-1 d``.
    """
    inv_y, inv_x = 1 / sigma[..., 0], 1 / sigma[..., 1]
    scale = -0.5 / (1 - rho * rho)
    return torch.stack([scale * inv_y * inv_y, -2 * scale * rho * inv_y * inv_x, scale * inv_x * inv_x], dim=-1)


def conic_from_covariance(cov: torch.Tensor) -> torch.Tensor:
    """Conic of a covariance matrix.

    Args:
        cov (Tensor): [..., 2, 2] Sigma in LR pixels^2, (row, col) order, positive definite
            (the off-diagonal entries are averaged).

    Returns:
        Tensor: [..., 3] (a, b, c).
    """
    syy, sxx = cov[..., 0, 0], cov[..., 1, 1]
    sxy = 0.5 * (cov[..., 0, 1] + cov[..., 1, 0])
    det = syy * sxx - sxy * sxy
    # Sigma^-1 = [[sxx, -sxy], [-sxy, syy]] / det
    return torch.stack([-0.5 * sxx / det, sxy / det, -0.5 * syy / det], dim=-1)


def conic_from_cholesky(chol: torch.Tensor) -> torch.Tensor:
    """Conic of ``Sigma = L L^T`` with ``L = [[l11, 0], [l21, l22]]`` in (row, col) order.

    Args:
        chol (Tensor): [..., 3] (l11, l21, l22) in LR pixels, l11 and l22 non-zero.

    Returns:
        Tensor: [..., 3] (a, b, c).
    """
    l11, l21, l22 = chol.unbind(-1)
    # Sigma^-1 = M^T M with M = L^-1 = [[m11, 0], [m21, m22]].
    m11, m22 = 1 / l11, 1 / l22
    m21 = -l21 * m11 * m22
    return torch.stack([-0.5 * (m11 * m11 + m21 * m21), -m21 * m22, -0.5 * m22 * m22], dim=-1)


def covariance_diagonal(conic: torch.Tensor) -> torch.Tensor:
    """(Sigma_yy, Sigma_xx) of conics: [..., 3] -> [..., 2] (inf where the conic is not negative definite)."""
    a, b, c = conic.unbind(-1)
    det = 4 * a * c - b * b  # det of Sigma^-1 = [[-2a, -b], [-b, -2c]]
    valid = (det > 0) & (a < 0)
    diagonal = torch.stack([-2 * c / det, -2 * a / det], dim=-1)
    return torch.where(valid.unsqueeze(-1), diagonal, torch.full_like(diagonal, math.inf))


# ----------------------------------------------------------------------------- truncation
def _pair(value) -> tuple[float, float]:
    if isinstance(value, Sequence):
        return float(value[0]), float(value[1])
    return float(value), float(value)


def _ring_weight(ring: int, sigma_max: tuple[float, float], max_offset: tuple[float, float]) -> float:
    """Largest weight exp(E) of a Gaussian anchored on Chebyshev ring ``ring`` around a point's nearest pixel."""
    weight = 0.0
    for sigma, offset in zip(sigma_max, max_offset):
        distance = max(0.0, ring - 0.5 - offset)
        if distance == 0.0 or not math.isfinite(sigma):
            return 1.0
        weight = max(weight, math.exp(-0.5 * (distance / sigma) ** 2) if sigma > 0 else 0.0)
    return weight


def truncation_bound(sigma_max, radius: int, max_offset=0.0, gaussians_per_pixel: int = 1) -> float:
    """Upper bound on the summed weight ``exp(E)`` of the Gaussians a radius-``radius`` window ignores.

    A query is within 0.5 LR px (per axis) of its nearest pixel ``n`` (beyond the image it is
    farther out, but then every Gaussian lies on the image side, which only adds distance).
    An ignored Gaussian is anchored on a Chebyshev ring ``k >= radius + 1`` around ``n``
    (8k pixels, G Gaussians each): its anchor is ``k`` px from ``n`` along some axis j, so its
    centre is at least ``k - 0.5 - max|offset_j|`` px from the query along j. Along one axis the
    quadratic form is at least ``d_j^2 / Sigma_jj`` whatever the correlation
    (``x^T Sigma^-1 x >= x_j^2 / Sigma_jj``), hence each weight is at most
    ``exp(-0.5 (k - 0.5 - max|offset_j|)^2 / sigma_max_j^2)`` (1 where that distance is <= 0),
    with ``sigma_max_j^2`` the largest ``Sigma_jj``. The rendered error is at most this bound
    times ``max |opacity * colour|`` (rule 'gaussian'), see :func:`anchored_truncation_error`.

    Args:
        sigma_max (float | Sequence[float]): largest sqrt(Sigma_jj) in LR px, one for both axes
            or (rows, cols).
        radius (int): window radius.
        max_offset (float | Sequence[float]): largest |offset| in LR px, one or (rows, cols).
        gaussians_per_pixel (int): G.

    Returns:
        float: the bound (inf where a Gaussian is unbounded).
    """
    sigmas, offsets = _pair(sigma_max), _pair(max_offset)
    if not all(math.isfinite(v) for v in sigmas + offsets):
        return math.inf
    total, ring = 0.0, radius + 1
    # Terms vanish (exp underflows) once every axis is 40 sigmas past its largest offset.
    last = radius + 2 + math.ceil(max(o + 0.5 + 40 * s for s, o in zip(sigmas, offsets)))
    while ring <= last:
        total += 8 * ring * gaussians_per_pixel * _ring_weight(ring, sigmas, offsets)
        ring += 1
    return total


@dataclass(frozen=True)
class GaussianExtent:
    """How far a set of anchored Gaussians reaches (what the window bounds need), as floats.

    Attributes:
        max_offset (tuple[float, float]): largest |offset| along rows, cols (0 without offsets).
        sigma_max (tuple[float, float]): largest sqrt(Sigma_yy), sqrt(Sigma_xx) (inf for a conic
            that is not negative definite).
        opacity_max (float): largest |opacity|.
        colour_max (float): largest |colour|.
        weighted_colour_max (float): largest |opacity * colour|.
    """

    max_offset: tuple[float, float]
    sigma_max: tuple[float, float]
    opacity_max: float
    colour_max: float
    weighted_colour_max: float


def gaussian_extent(gaussians: AnchoredGaussians) -> GaussianExtent:
    """The :class:`GaussianExtent` of ``gaussians`` (reads the data: one device sync).

    Computed in :func:`field_dtype` (float32 for half inputs), without copies to float64.
    """
    g = gaussians.check()
    dtype = field_dtype(g.colour.dtype)
    with torch.no_grad():
        colour, opacity, conic = g.colour.detach().to(dtype), g.opacity.detach().to(dtype), g.conic.detach().to(dtype)
        zeros = conic.new_zeros(2)
        if colour.numel() == 0:
            return GaussianExtent((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0)
        stats = [
            covariance_diagonal(conic.reshape(-1, 3)).amax(0).sqrt(),
            g.offset.detach().to(dtype).abs().reshape(-1, 2).amax(0) if g.offset is not None else zeros,
            opacity.abs().amax().reshape(1),
            colour.abs().amax().reshape(1),
            (colour * opacity.unsqueeze(-1)).abs().amax().reshape(1),
        ]
        values = torch.cat(stats).nan_to_num(nan=math.inf).tolist()
    return GaussianExtent(
        max_offset=(values[2], values[3]),
        sigma_max=(values[0], values[1]),
        opacity_max=values[4],
        colour_max=values[5],
        weighted_colour_max=values[6],
    )


def window_radius(gaussians: AnchoredGaussians, tolerance: float | None = None, rule: str = 'gaussian') -> int:
    """Smallest window radius outside which no Gaussian's weight at any query exceeds ``tolerance``.

    The weight of a Gaussian is ``|opacity| * exp(E)`` (its alpha under 'gsplat_sum'). By the
    argument of :func:`truncation_bound`, a Gaussian ignored by a radius-r window is at least
    ``r + 0.5 - max|offset_j|`` px from the query along some axis j, so its weight is at most
    ``opacity_max * exp(-0.5 (r + 0.5 - max|offset_j|)^2 / sigma_max_j^2)``; this is
    ``<= tolerance`` once ``r >= max|offset_j| + reach_j - 0.5`` with
    ``reach_j = sigma_max_j sqrt(2 ln(opacity_max / tolerance))``. Hence
    ``r = max_j ceil(max|offset_j| + reach_j - 0.5)``, at most ``max(h, w) - 1`` (which covers the
    whole image around any pixel: then nothing is ignored).

    Data-dependent (reads the Gaussians, one device sync): not for traced / exported graphs,
    which must pass a fixed radius.

    Args:
        gaussians (AnchoredGaussians): the Gaussians.
        tolerance (float | None): per-Gaussian weight; None: ``DEFAULT_TOLERANCE[rule]`` (1e-5
            for 'gaussian'; 1/255 for 'gsplat_sum', where every ignored term is one the rule
            drops anyway, so the window is exact).
        rule (str): 'gaussian' or 'gsplat_sum' (only picks the default tolerance).

    Returns:
        int: the radius.
    """
    tolerance = DEFAULT_TOLERANCE[check_rule(rule)] if tolerance is None else float(tolerance)
    if not tolerance > 0:
        raise ValueError(f'tolerance must be > 0, got {tolerance}')
    extent = gaussian_extent(gaussians)
    covering = max(gaussians.size) - 1
    if extent.opacity_max <= tolerance:
        return 0
    reach = math.sqrt(2 * math.log(extent.opacity_max / tolerance))
    radius = 0
    for sigma, offset in zip(extent.sigma_max, extent.max_offset):
        needed = offset + sigma * reach - 0.5
        if not math.isfinite(needed):
            return covering
        radius = max(radius, math.ceil(needed))
    return int(min(radius, covering))


def anchored_truncation_error(gaussians: AnchoredGaussians, radius: int, rule: str = 'gaussian') -> float:
    """Bound on ``|windowed - exhaustive|`` (any query, any channel) of a radius-``radius`` window.

    'gaussian': ``truncation_bound(...) * max |opacity * colour|``. 'gsplat_sum': 0 when every
    ignored Gaussian's alpha bound ``opacity_max * exp(E)_max`` on the first ignored ring is below
    1/255 (the rule drops them all; equal up to rounding of terms exactly at the threshold), else
    ``truncation_bound(...) * opacity_max * max |colour|``. Also 0 when the window covers the image.
    """
    extent = gaussian_extent(gaussians)
    if radius >= max(gaussians.size) - 1:
        return 0.0
    bound = truncation_bound(extent.sigma_max, radius, extent.max_offset, gaussians.gaussians_per_pixel)
    if check_rule(rule) == 'gaussian':
        return bound * extent.weighted_colour_max
    if extent.opacity_max * _ring_weight(radius + 1, _pair(extent.sigma_max), _pair(extent.max_offset)) < ALPHA_MIN:
        return 0.0
    return bound * extent.opacity_max * extent.colour_max


# ----------------------------------------------------------------------------- the table
@dataclass
class GaussianTable:
    """Anchored Gaussians laid out for window lookups (built once per image, reused by every query).

    Attributes:
        values (Tensor): [B,h+2r,w+2r,G*F]: per LR pixel, G Gaussians of F fields each:
            colour (C; multiplied by opacity under 'gaussian'), opacity (1; 'gsplat_sum' only,
            where the clamp forbids premultiplying), conic (3), offset (2; only with offsets).
            Zero on the border of r pixels. float32 or wider (:func:`field_dtype`).
        radius (int): window radius r the table was padded for.
        gaussians_per_pixel (int): G.
        rule (str): 'gaussian' or 'gsplat_sum'.
        has_offset (bool): whether the fields end with an offset.
    """

    values: torch.Tensor
    radius: int
    gaussians_per_pixel: int = 1
    rule: str = 'gaussian'
    has_offset: bool = False

    @property
    def fields(self) -> int:
        """F, the fields per Gaussian."""
        return int(self.values.shape[-1]) // self.gaussians_per_pixel

    @property
    def channels(self) -> int:
        """C, the colour channels."""
        return self.fields - 3 - (self.rule == 'gsplat_sum') - 2 * self.has_offset


def anchored_gaussian_table(gaussians: AnchoredGaussians, radius: int, rule: str = 'gaussian') -> GaussianTable:
    """Lay ``gaussians`` out for windows of radius ``radius`` (differentiable; see :class:`GaussianTable`)."""
    g = gaussians.check()
    check_rule(rule)
    if not isinstance(radius, int) or radius < 0:
        raise ValueError(f'radius must be an int >= 0, got {radius!r}')
    dtype = field_dtype(g.colour.dtype)
    with torch.autocast(g.colour.device.type, enabled=False):
        colour, opacity = g.colour.to(dtype), g.opacity.to(dtype).unsqueeze(-1)
        parts = [colour * opacity] if rule == 'gaussian' else [colour, opacity]
        parts.append(g.conic.to(dtype))
        if g.offset is not None:
            parts.append(g.offset.to(dtype))
        rows = torch.cat(parts, dim=-1).flatten(3)  # [B,h,w,G*F]
    values = F.pad(rows, (0, 0, radius, radius, radius, radius)).contiguous()  # contiguous: lookups need no copy
    return GaussianTable(values, radius, g.gaussians_per_pixel, rule, g.offset is not None)


def is_tracing() -> bool:
    """Whether an exporter is recording the graph (ONNX export, ``torch.export``, ``torch.jit.trace``).

    Plain ``torch.compile`` is not included: dynamo handles the chunked ``autograd.Function``,
    and compiled training then keeps the renderer's bounded memory.
    """
    exporting = getattr(torch.compiler, 'is_exporting', lambda: False)
    return bool(torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or exporting())


def evaluate_anchored_table(table: GaussianTable, coord: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Render a :class:`GaussianTable` at query coordinates (windowed, see the module docstring).

    Points are processed ``chunk_size`` at a time, forward and backward (the backward is written
    by hand and recomputes each chunk), so memory is O(chunk * K^2 * G) beyond the result and the
    table's gradient (plus the fold buffer, at most ``FOLD_BUFFER_ELEMENTS``); ``coord`` never
    receives a gradient. Under :func:`is_tracing` the same math runs as one vectorised evaluation.

    Gradients under 'gsplat_sum' are those of the formula: zero for a term whose alpha is
    clamped (opacity * exp(E) > 1: only its colour gets one) or dropped (< 1/255: none).

    Args:
        table (GaussianTable): from :func:`anchored_gaussian_table`.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1] (LIIF coordinates of the LR image),
            or any [B,...,2].
        chunk_size (int | None): points per chunk (None: ``CHUNK_ELEMENTS`` of the device type
            divided by the window's size K^2 * G * F).

    Returns:
        Tensor: [B,Q,C] (or [B,...,C]), float32 or wider.
    """
    values = table.values
    b, hp, wp, width = values.shape
    spec = _Spec(table.radius, table.gaussians_per_pixel, table.channels, table.rule, table.has_offset)
    if chunk_size is None:
        budget = CHUNK_ELEMENTS['cpu' if values.device.type == 'cpu' else 'other']
        chunk_size = max(1, budget // ((2 * table.radius + 1) ** 2 * width))
    if chunk_size <= 0:
        raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
    pos = pixel_position(coord.detach(), (hp - 2 * table.radius, wp - 2 * table.radius)).reshape(b, -1, 2)
    image = torch.arange(b, device=coord.device).view(b, 1).expand(b, pos.shape[1])
    dtype = field_dtype(values.dtype)
    with torch.autocast(values.device.type, enabled=False):  # exponent and sums in float32 (field_dtype)
        values, pos, image = values.to(dtype), pos.reshape(-1, 2).to(dtype), image.reshape(-1)
        if is_tracing():
            out = _render_traceable(values, pos, image, spec)
        else:
            out = _AnchoredRender.apply(values, pos, image, spec, chunk_size)
    return out.view(*coord.shape[:-1], spec.channels)


def render_anchored_gaussians(
    gaussians: AnchoredGaussians,
    coord: torch.Tensor,
    radius: int | None = None,
    rule: str = 'gaussian',
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Render anchored Gaussians at query coordinates, summing each query's window.

    Args:
        gaussians (AnchoredGaussians): G Gaussians per LR pixel.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1] (or any [B,...,2]).
        radius (int | None): window radius; None: :func:`window_radius` (data-dependent; not
            allowed while tracing / exporting). The error is at most
            :func:`anchored_truncation_error`.
        rule (str): 'gaussian' or 'gsplat_sum' (module docstring).
        chunk_size (int | None): points per chunk (see :func:`evaluate_anchored_table`).

    Returns:
        Tensor: [B,Q,C] (or [B,...,C]); differentiable w.r.t. colour, opacity, conic and offset.
    """
    check_rule(rule)
    if radius is None:
        if is_tracing():
            raise ValueError('render_anchored_gaussians: pass a fixed radius when tracing or exporting')
        radius = window_radius(gaussians, rule=rule)
    return evaluate_anchored_table(anchored_gaussian_table(gaussians, radius, rule), coord, chunk_size)


def render_anchored_gaussians_exhaustive(
    gaussians: AnchoredGaussians, coord: torch.Tensor, rule: str = 'gaussian'
) -> torch.Tensor:
    """Brute-force reference: every Gaussian of the image at every query, no window.

    Same arguments and result as :func:`render_anchored_gaussians`. Memory O(Q * h * w * G):
    for tests and small images only.
    """
    g = gaussians.check()
    check_rule(rule)
    b, h, w, n, c = g.colour.shape
    pos = pixel_position(coord, (h, w)).reshape(b, -1, 1, 2)  # [B,Q,1,2]
    anchors = pixel_grid((h, w), coord.device, pos.dtype).view(1, h, w, 1, 2)
    centres = anchors + (g.offset if g.offset is not None else 0)
    d = pos - centres.expand(b, h, w, n, 2).reshape(b, 1, -1, 2)  # [B,Q,h*w*G,2]
    a, bb, cc = g.conic.reshape(b, 1, -1, 3).unbind(-1)
    exponent = a * d[..., 0] ** 2 + bb * d[..., 0] * d[..., 1] + cc * d[..., 1] ** 2
    raw = g.opacity.reshape(b, 1, -1) * torch.exp(exponent)  # [B,Q,h*w*G]
    if rule == 'gsplat_sum':
        raw = torch.where(raw >= ALPHA_MIN, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
    out = torch.einsum('bqn,bnc->bqc', raw, g.colour.reshape(b, -1, c))
    return out.reshape(*coord.shape[:-1], c)


# ----------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class _Spec:
    radius: int
    gaussians_per_pixel: int
    channels: int
    rule: str
    has_offset: bool


class _Window:
    """Where each point's K x K window lies in a padded table, and its Gaussians' terms.

    Shared by every chunk of one call. ``dy``/``dx`` are point-minus-centre offsets in LR pixels
    along rows / columns. Without offsets they are laid out [n,K,1,1] / [n,1,K,1] so that the
    window's [n,K,K,G] terms come from broadcasting instead of stacked copies.
    """

    def __init__(self, spec: _Spec, table_shape: Sequence[int], pos: torch.Tensor):
        _, self.hp, self.wp, width = table_shape
        r = spec.radius
        self.spec, self.k, self.g, self.c = spec, 2 * r + 1, spec.gaussians_per_pixel, spec.channels
        self.fields = width // self.g
        self.h, self.w = self.hp - 2 * r, self.wp - 2 * r
        self.opacity_at = self.c if spec.rule == 'gsplat_sum' else None
        self.conic_at = self.c + (spec.rule == 'gsplat_sum')
        self.offset_at = self.conic_at + 3 if spec.has_offset else None
        steps = torch.arange(-r, r + 1, device=pos.device)
        self.row_steps = steps.to(pos.dtype).view(1, self.k, 1, 1)
        self.col_steps = steps.to(pos.dtype).view(1, 1, self.k, 1)
        self.row_offsets = (steps.view(self.k, 1) * self.wp + steps.view(1, self.k)).reshape(-1)  # [K2]
        # torch.tensor from the sizes (not new_tensor / float()): under torch.export they stay symbolic.
        self.limit = torch.tensor([self.h - 1, self.w - 1], dtype=pos.dtype, device=pos.device)

    def locate(self, pos: torch.Tensor, image: torch.Tensor):
        """For n points: (nearest [n] flat LR pixel in [B*h*w], table rows [n*K2], frac [n,2] = pos - nearest)."""
        nearest = torch.minimum(torch.floor(pos + 0.5).clamp_min(0), self.limit)  # border pixel beyond the image
        frac = pos - nearest
        row, col = nearest.long().unbind(-1)
        centre = (image * self.hp + row + self.spec.radius) * self.wp + col + self.spec.radius
        rows = (centre.unsqueeze(1) + self.row_offsets).reshape(-1)
        return (image * self.h + row) * self.w + col, rows, frac

    def terms(self, flat_table: torch.Tensor, rows: torch.Tensor, frac: torch.Tensor, inplace: bool = True):
        """The window's Gaussians: (gathered [n,K,K,G,F], dy, dx, weight exp(E) [n,K,K,G], factor [n,K,K,G]).

        ``factor`` is what multiplies each colour: the weight ('gaussian', opacity premultiplied
        into the colour) or the clamped alpha ('gsplat_sum', 0 for dropped terms).
        """
        k = self.k
        # index_select copies whole table rows: much faster than gathering per element.
        gathered = flat_table.index_select(0, rows).view(-1, k, k, self.g, self.fields)
        dy = frac[:, 0].view(-1, 1, 1, 1) - self.row_steps
        dx = frac[:, 1].view(-1, 1, 1, 1) - self.col_steps
        if self.offset_at is not None:
            dy = dy - gathered[..., self.offset_at]
            dx = dx - gathered[..., self.offset_at + 1]
        a, b, cc = (gathered[..., self.conic_at + i] for i in range(3))
        exponent = torch.addcmul(torch.addcmul(a * (dy * dy), b, dy * dx), cc, dx * dx)
        weight = exponent.exp_() if inplace else exponent.exp()
        if self.opacity_at is None:
            return gathered, dy, dx, weight, weight
        raw = gathered[..., self.opacity_at] * weight
        factor = torch.where(raw >= ALPHA_MIN, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
        return gathered, dy, dx, weight, factor

    def colour(self, gathered: torch.Tensor) -> torch.Tensor:
        """[n,K*K*G,C] colours of a window (a view: merging K, K, G needs no copy)."""
        return gathered[..., : self.c].reshape(gathered.shape[0], -1, self.c)


def _render_traceable(values: torch.Tensor, pos: torch.Tensor, image: torch.Tensor, spec: _Spec) -> torch.Tensor:
    """The chunked evaluation's math on every point at once, as ordinary differentiable ops (for exporters)."""
    window = _Window(spec, values.shape, pos)
    _, rows, frac = window.locate(pos, image)
    gathered, _, _, _, factor = window.terms(values.reshape(-1, values.shape[-1]), rows, frac, inplace=False)
    return torch.bmm(factor.reshape(pos.shape[0], 1, -1), window.colour(gathered)).squeeze(1)


class _AnchoredRender(torch.autograd.Function):
    """Chunked window evaluation with a hand-written, recomputing backward (see evaluate_anchored_table)."""

    @staticmethod
    def forward(ctx, values, pos, image, spec, chunk_size):
        window = _Window(spec, values.shape, pos)
        flat_table = values.reshape(-1, values.shape[-1])
        out = pos.new_empty(pos.shape[0], spec.channels)
        for start in range(0, pos.shape[0], chunk_size):
            part = slice(start, start + chunk_size)
            _, rows, frac = window.locate(pos[part], image[part])
            gathered, _, _, _, factor = window.terms(flat_table, rows, frac)
            torch.bmm(factor.view(len(frac), 1, -1), window.colour(gathered), out=out[part].unsqueeze(1))
        ctx.save_for_backward(values, pos, image)
        ctx.spec, ctx.chunk_size = spec, chunk_size
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        values, pos, image = ctx.saved_tensors
        spec = ctx.spec
        window = _Window(spec, values.shape, pos)
        b, hp, wp, width = values.shape
        c, k, fields = window.c, window.k, window.fields
        flat_table = values.reshape(-1, width)
        pixels = b * window.h * window.w
        fold = pixels * k * k * width <= FOLD_BUFFER_ELEMENTS
        if fold:
            # Gradients of each point's whole window, summed per nearest LR pixel: [B*h*w, K*K*row].
            # One row add per point (not per Gaussian); ``fold`` then adds each window onto the table.
            window_grad = values.new_zeros(pixels, k * k * width)
        else:
            grad_table = torch.zeros_like(values)
            grad_flat = grad_table.view(-1, width)
        for start in range(0, pos.shape[0], ctx.chunk_size):
            part = slice(start, start + ctx.chunk_size)
            nearest, rows, frac = window.locate(pos[part], image[part])
            gathered, dy, dx, weight, factor = window.terms(flat_table, rows, frac)
            n, grad = len(nearest), grad_out[part]  # grad [n,C]
            # out = sum_j factor_j colour_j: d/dcolour_j = factor_j grad, d/dfactor_j = <colour_j, grad>.
            grad_factor = torch.einsum('nijgc,nc->nijg', gathered[..., :c], grad)
            grad_rows = torch.empty(n, k, k, window.g, fields, dtype=values.dtype, device=values.device)
            torch.mul(factor.unsqueeze(-1), grad.view(n, 1, 1, 1, c), out=grad_rows[..., :c])
            if window.opacity_at is None:  # factor = weight = exp(E)
                grad_exponent = grad_factor.mul_(weight)
            else:  # factor = min(1, opacity * weight), 0 below 1/255: no gradient where clamped or dropped
                raw = gathered[..., window.opacity_at] * weight
                grad_raw = grad_factor.mul_((raw >= ALPHA_MIN) & (raw <= ALPHA_MAX))
                torch.mul(grad_raw, weight, out=grad_rows[..., window.opacity_at])
                grad_exponent = grad_raw.mul_(raw)
            # E = a dy^2 + b dy dx + c dx^2, so dE/da = dy^2 etc.
            at = window.conic_at
            torch.mul(grad_exponent, dy * dy, out=grad_rows[..., at])
            torch.mul(grad_exponent, dy * dx, out=grad_rows[..., at + 1])
            torch.mul(grad_exponent, dx * dx, out=grad_rows[..., at + 2])
            if window.offset_at is not None:  # d = p - anchor - offset: dE/doffset = -(dE/dy, dE/dx)
                a, bb, cc = (gathered[..., at + i] for i in range(3))
                torch.mul(grad_exponent, -(2 * a * dy + bb * dx), out=grad_rows[..., window.offset_at])
                torch.mul(grad_exponent, -(bb * dy + 2 * cc * dx), out=grad_rows[..., window.offset_at + 1])
            if fold:
                window_grad.index_add_(0, nearest, grad_rows.view(n, -1))
            else:
                grad_flat.index_add_(0, rows, grad_rows.view(n * k * k, width))
        if fold:
            # fold's column layout is (channel, window position); windows start at their pixel in the padded table.
            columns = window_grad.view(b, -1, k * k, width).permute(0, 3, 2, 1).reshape(b, width * k * k, -1)
            grad_table = F.fold(columns, (hp, wp), k).permute(0, 2, 3, 1)
        return grad_table, None, None, None, None
