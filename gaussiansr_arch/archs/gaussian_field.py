"""The continuous Gaussian feature field of GaussianSR, as plain functions.

Every LR pixel ``i`` carries one 2D Gaussian centred exactly on its pixel centre ``mu_i``,
with covariance ``Sigma_i = [[s_y^2, rho s_y s_x], [rho s_y s_x, s_x^2]]`` measured in LR
pixels, an opacity ``o_i`` and an amplitude ``v_i`` (a feature vector). The field is
(paper eq. 3-5, peak-normalised as the authors' code; the 1/(2 pi |Sigma|) factor is
absorbed by the learnable opacity)::

    F(p) = sum_i exp(-0.5 (p - mu_i)^T Sigma_i^-1 (p - mu_i)) * o_i * v_i

Because sigmas are in LR-pixel units the field is one fixed function of the physical
position: every output size samples the same field (scale consistency).

``render_gaussian_field`` evaluates it at arbitrary query points by summing the Gaussians of
the K x K LR neighbourhood (K = 2 * radius + 1) around the nearest LR pixel. Beyond the
result, memory is O(chunk * K^2) (points are evaluated in chunks, forward and backward),
never O(h*w*H*W) or a dense HR canvas. The evaluation is the shared Gaussian renderer's
(``archs/gaussian_renderer.py``, also GSASR's and ContinuousSR's) in its simplest case: one
Gaussian per LR pixel (G = 1), centred on it (no offset), rule 'gaussian', fixed radius.
``truncation_bound`` says how much the ignored Gaussians can contribute at most;
``render_gaussian_field_exhaustive`` is the brute-force reference (every Gaussian of the
image) that tests compare against.
"""

import torch

from gaussiansr_arch.archs.coordinates import pixel_grid, pixel_position
from gaussiansr_arch.archs.gaussian_renderer import (
    AnchoredGaussians,
    GaussianTable,
    anchored_gaussian_table,
    conic_from_sigma_rho,
    evaluate_anchored_table,
    field_dtype,
)
from gaussiansr_arch.archs.gaussian_renderer import truncation_bound as renderer_truncation_bound


def gaussian_weight(offset: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Peak-normalised anisotropic Gaussian ``exp(-0.5 d^T Sigma^-1 d)``.

    Args:
        offset (Tensor): [..., 2] displacement d = p - mu in LR pixels, (row, col).
        sigma (Tensor): [..., 2] standard deviations (sigma_y along rows, sigma_x along cols), > 0.
        rho (Tensor): [...] correlation coefficient, |rho| < 1.

    Returns:
        Tensor: [...] weights in (0, 1].
    """
    u = offset[..., 0] / sigma[..., 0]
    v = offset[..., 1] / sigma[..., 1]
    quad = (u * u - 2 * rho * u * v + v * v) / (1 - rho * rho)
    return torch.exp(-0.5 * quad)


def quadratic_form_coefficients(sigma: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Per-pixel coefficients of the Gaussian's exponent, ``-0.5 d^T Sigma^-1 d = a dy^2 + b dy dx + c dx^2``.

    Computed once per LR pixel so that each of the many (query, Gaussian) pairs needs only
    multiply-adds (same value as :func:`gaussian_weight`, tested).

    Args:
        sigma (Tensor): [B,2,h,w] (sigma_y, sigma_x).
        rho (Tensor): [B,1,h,w].

    Returns:
        Tensor: [B,3,h,w] = (a, b, c).
    """
    return conic_from_sigma_rho(sigma.movedim(1, -1), rho[:, 0]).movedim(-1, 1)


def field_gaussians(
    amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor, opacity: torch.Tensor
) -> AnchoredGaussians:
    """GaussianSR's field as the renderer's :class:`AnchoredGaussians`: G = 1, centred (no offset).

    Args:
        amplitude (Tensor): [B,C,h,w] feature amplitudes v_i.
        sigma (Tensor): [B,2,h,w] per-pixel (sigma_y, sigma_x) in LR pixels.
        rho (Tensor): [B,1,h,w] per-pixel correlation, |rho| < 1.
        opacity (Tensor): [B,1,h,w] per-pixel opacity.

    Returns:
        AnchoredGaussians: colour [B,h,w,1,C], opacity [B,h,w,1], conic [B,h,w,1,3], offset None
        (channels-last views of the inputs; the conic in float32 or wider, see :func:`field_dtype`).
    """
    dtype = field_dtype(amplitude.dtype)
    with torch.autocast(amplitude.device.type, enabled=False):
        conic = quadratic_form_coefficients(sigma.to(dtype), rho.to(dtype))
    return AnchoredGaussians(
        colour=amplitude.permute(0, 2, 3, 1).unsqueeze(3),
        opacity=opacity.permute(0, 2, 3, 1),
        conic=conic.permute(0, 2, 3, 1).unsqueeze(3),
    )


def gaussian_table(
    amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor, opacity: torch.Tensor, radius: int = 3
) -> torch.Tensor:
    """Everything a Gaussian contributes, one row per LR pixel, ready for row lookups.

    The renderer's table (:func:`~gaussiansr_arch.archs.gaussian_renderer.anchored_gaussian_table`)
    of :func:`field_gaussians` under rule 'gaussian'. Built once per encoded image and reused by
    every query chunk. The border of ``radius`` zero rows stands for the Gaussians that do not
    exist beyond the image (zero amplitude), so every K x K window is a plain row lookup with no
    clamping or masking.

    Args:
        amplitude (Tensor): [B,C,h,w] feature amplitudes v_i.
        sigma (Tensor): [B,2,h,w] per-pixel (sigma_y, sigma_x) in LR pixels.
        rho (Tensor): [B,1,h,w] per-pixel correlation, |rho| < 1.
        opacity (Tensor): [B,1,h,w] per-pixel opacity.
        radius (int): neighbourhood radius the table will be evaluated with.

    Returns:
        Tensor: [B,h+2r,w+2r,C+3] = premultiplied amplitude o*v, then the quadratic-form
        coefficients (a, b, c) of :func:`quadratic_form_coefficients`; zero on the border.
        Always float32 or wider (see :func:`field_dtype`).
    """
    return anchored_gaussian_table(field_gaussians(amplitude, sigma, rho, opacity), radius).values


def render_gaussian_field(
    amplitude: torch.Tensor,
    sigma: torch.Tensor,
    rho: torch.Tensor,
    opacity: torch.Tensor,
    coord: torch.Tensor,
    radius: int = 3,
) -> torch.Tensor:
    """Evaluate the Gaussian field at query coordinates (truncated to a K x K neighbourhood).

    Args:
        amplitude (Tensor): [B,C,h,w] feature amplitudes v_i.
        sigma (Tensor): [B,2,h,w] per-pixel (sigma_y, sigma_x) in LR pixels.
        rho (Tensor): [B,1,h,w] per-pixel correlation, |rho| < 1.
        opacity (Tensor): [B,1,h,w] per-pixel opacity.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1], or any [B,...,2].
        radius (int): neighbourhood radius; K = 2 * radius + 1 LR pixels per axis.

    Returns:
        Tensor: [B,Q,C] (or [B,...,C]) field values. Gaussians exist only inside the image.
    """
    return evaluate_gaussian_table(gaussian_table(amplitude, sigma, rho, opacity, radius), coord, radius)


# Points evaluated at once. On a CPU the per-(point, Gaussian) temporaries of a chunk (~2 MB at
# radius 3) stay in cache, where whole-batch temporaries (hundreds of MB) spent most of their
# time in page faults and memory traffic; a GPU wants few, large launches instead.
FIELD_CHUNK_SIZE = {'cpu': 1024, 'other': 65536}


def evaluate_gaussian_table(
    table: torch.Tensor, coord: torch.Tensor, radius: int = 3, chunk_size: int | None = None
) -> torch.Tensor:
    """The field of a :func:`gaussian_table` at query coordinates (see :func:`render_gaussian_field`).

    The renderer's :func:`~gaussiansr_arch.archs.gaussian_renderer.evaluate_anchored_table` with
    G = 1, no offsets, rule 'gaussian'. Each point sums the Gaussians of the K x K LR pixels
    (K = 2 * radius + 1) around its nearest LR pixel (the nearest border pixel for points beyond
    the image). Points are processed ``chunk_size`` at a time and the backward pass is written by
    hand (it recomputes the weights chunk by chunk), so memory stays O(chunk * K^2) beyond the
    result and the table's gradient whatever the number of points; ``coord`` never receives a
    gradient. Under ONNX export / ``torch.export`` the same math runs unchunked as plain ops
    (``gaussian_renderer.is_tracing``).

    Args:
        table (Tensor): [B,h+2r,w+2r,C+3] from :func:`gaussian_table` with the same radius.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1], or any [B,...,2].
        radius (int): neighbourhood radius.
        chunk_size (int | None): points per chunk (None: ``FIELD_CHUNK_SIZE`` of the device type).

    Returns:
        Tensor: [B,Q,C] (or [B,...,C]).
    """
    if chunk_size is None:
        chunk_size = FIELD_CHUNK_SIZE['cpu' if table.device.type == 'cpu' else 'other']
    return evaluate_anchored_table(GaussianTable(table, radius), coord, chunk_size)


def render_gaussian_field_exhaustive(
    amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor, opacity: torch.Tensor, coord: torch.Tensor
) -> torch.Tensor:
    """Brute-force reference: the field summed over **every** Gaussian of the image.

    Same arguments and result as :func:`render_gaussian_field`, with no truncation.
    Memory O(Q * h * w): for tests and small images only.
    """
    b, c, h, w = amplitude.shape
    pos = pixel_position(coord, (h, w))  # [B,Q,2]
    centres = pixel_grid((h, w), coord.device, pos.dtype).reshape(1, 1, h * w, 2)
    offset = pos.unsqueeze(2) - centres  # [B,Q,hw,2]
    weight = gaussian_weight(
        offset, sigma.flatten(2).transpose(1, 2).unsqueeze(1), rho.flatten(2).transpose(1, 2)[..., 0].unsqueeze(1)
    )  # [B,Q,hw]
    values = (amplitude * opacity).flatten(2)  # [B,C,hw]
    return torch.einsum('bqn,bcn->bqc', weight, values)


def truncation_bound(sigma_max: float, radius: int) -> float:
    """Upper bound on the summed weight of the Gaussians a radius-``radius`` window ignores.

    A query is within 0.5 LR px (per axis) of its nearest pixel, so an ignored Gaussian lies
    at least ``k - 0.5`` px away along some axis, ``k >= radius + 1`` being its Chebyshev ring
    (8k pixels). Along that axis the quadratic form is at least ``d^2 / sigma_axis^2`` whatever
    rho is (``x^T Sigma^-1 x >= x_j^2 / Sigma_jj``), hence each weight is at most
    ``exp(-0.5 (k - 0.5)^2 / sigma_max^2)``. The field error is then at most this bound times
    ``max_i |o_i v_i|``. The renderer's general bound (offsets, G Gaussians per pixel) with
    neither.
    """
    return renderer_truncation_bound(sigma_max, radius)
