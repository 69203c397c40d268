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
the K x K LR neighbourhood (K = 2 * radius + 1) around the nearest LR pixel. Memory is
O(Q * K^2 * C) per call (callers chunk the queries), never O(h*w*H*W) or a dense HR canvas.
``truncation_bound`` says how much the ignored Gaussians can contribute at most;
``render_gaussian_field_exhaustive`` is the brute-force reference (every Gaussian of the
image) that tests compare against.
"""

import math
from collections.abc import Sequence

import torch


def lr_pixel_position(coord: torch.Tensor, lr_size: Sequence[int]) -> torch.Tensor:
    """Continuous LR pixel index of coordinates: LR pixel centres fall on integers.

    Args:
        coord (Tensor): [..., 2] (row, col) in LIIF's [-1, 1] convention.
        lr_size (Sequence[int]): (h, w) of the LR grid.

    Returns:
        Tensor: [..., 2] positions; pixel ``(m, n)`` has its centre at ``(m, n)``.
    """
    size = coord.new_tensor([float(lr_size[0]), float(lr_size[1])])
    return (coord + 1) * size / 2 - 0.5


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
    inv_y, inv_x = 1 / sigma[:, 0:1], 1 / sigma[:, 1:2]
    scale = -0.5 / (1 - rho * rho)
    return torch.cat([scale * inv_y * inv_y, -2 * scale * rho * inv_y * inv_x, scale * inv_x * inv_x], dim=1)


def _neighbour_offsets(radius: int, device) -> torch.Tensor:
    """[K*K, 2] integer offsets (row, col) of a K x K neighbourhood, row-major."""
    r = torch.arange(-radius, radius + 1, device=device)
    return torch.stack(torch.meshgrid(r, r, indexing='ij'), dim=-1).reshape(-1, 2)


def gaussian_table(amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor,
                   opacity: torch.Tensor) -> torch.Tensor:
    """Everything a Gaussian contributes, one row per LR pixel, ready for row lookups.

    Built once per encoded image and reused by every query chunk.

    Args:
        amplitude (Tensor): [B,C,h,w] feature amplitudes v_i.
        sigma (Tensor): [B,2,h,w] per-pixel (sigma_y, sigma_x) in LR pixels.
        rho (Tensor): [B,1,h,w] per-pixel correlation, |rho| < 1.
        opacity (Tensor): [B,1,h,w] per-pixel opacity.

    Returns:
        Tensor: [B,h,w,C+3] = premultiplied amplitude o*v, then the quadratic-form
        coefficients (a, b, c) of :func:`quadratic_form_coefficients`.
    """
    table = torch.cat([amplitude * opacity, quadratic_form_coefficients(sigma, rho)], dim=1)
    return table.permute(0, 2, 3, 1).contiguous()  # contiguous: the lookups then need no copy


def render_gaussian_field(amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor,
                          opacity: torch.Tensor, coord: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Evaluate the Gaussian field at query coordinates (truncated to a K x K neighbourhood).

    Args:
        amplitude (Tensor): [B,C,h,w] feature amplitudes v_i.
        sigma (Tensor): [B,2,h,w] per-pixel (sigma_y, sigma_x) in LR pixels.
        rho (Tensor): [B,1,h,w] per-pixel correlation, |rho| < 1.
        opacity (Tensor): [B,1,h,w] per-pixel opacity.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1], or [B,Q,P,2] groups of points.
        radius (int): neighbourhood radius; K = 2 * radius + 1 LR pixels per axis.

    Returns:
        Tensor: [B,Q,C] (or [B,Q,P,C]) field values. Gaussians exist only inside the image.
    """
    return evaluate_gaussian_table(gaussian_table(amplitude, sigma, rho, opacity), coord, radius)


def evaluate_gaussian_table(table: torch.Tensor, coord: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """The field of a :func:`gaussian_table` at query coordinates (see :func:`render_gaussian_field`).

    Each point sums the Gaussians of the K x K LR pixels (K = 2 * radius + 1) around its
    nearest LR pixel. Points may come in groups of P nearby points (e.g. the 3x3 HR
    neighbourhood of a query, as the LTE decoder needs): a group gathers the Gaussians of one
    shared, slightly larger window once and masks each point to its own K x K window, so the
    result is exactly the per-point evaluation at a fraction of the memory traffic.

    Args:
        table (Tensor): [B,h,w,C+3] from :func:`gaussian_table`.
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1], or [B,Q,P,2] groups of points.
        radius (int): neighbourhood radius.

    Returns:
        Tensor: [B,Q,C] (or [B,Q,P,C]).
    """
    grouped = coord.dim() == 4
    points = coord if grouped else coord.unsqueeze(2)  # [B,Q,P,2]
    b, h, w, width = table.shape
    c = width - 3
    q = points.shape[1]
    pos = lr_pixel_position(points, (h, w))
    nearest = torch.floor(pos + 0.5).long()  # [B,Q,P,2]
    anchor = torch.floor(pos.mean(dim=2) + 0.5).long()  # [B,Q,2]
    # The shared window must contain every point's own window: widen it by how far any
    # point's nearest pixel is from the anchor (0 for single points, 1 for 3x3 HR stencils).
    reach = int((nearest - anchor.unsqueeze(2)).abs().max()) if points.shape[2] > 1 else 0
    window = anchor.unsqueeze(2) + _neighbour_offsets(radius + reach, coord.device)  # [B,Q,K2,2]
    k2 = window.shape[2]
    rows = window[..., 0].clamp(0, h - 1)
    cols = window[..., 1].clamp(0, w - 1)
    batch_offset = torch.arange(b, device=coord.device).view(b, 1, 1) * (h * w)
    flat_index = (rows * w + cols + batch_offset).reshape(-1)

    # One row lookup per Gaussian (index_select copies whole rows: much faster than gather).
    gathered = table.reshape(b * h * w, width).index_select(0, flat_index).view(b, q, 1, k2, width)

    inside_image = ((window[..., 0] >= 0) & (window[..., 0] < h) & (window[..., 1] >= 0) & (window[..., 1] < w))
    mask = inside_image.unsqueeze(2)  # [B,Q,1,K2]
    if reach:
        own_window = (window.unsqueeze(2) - nearest.unsqueeze(3)).abs().amax(dim=-1) <= radius
        mask = mask & own_window  # [B,Q,P,K2]
    window = window.to(pos.dtype)
    dy = pos[..., 0:1] - window[..., 0].unsqueeze(2)  # [B,Q,P,K2]
    dx = pos[..., 1:2] - window[..., 1].unsqueeze(2)
    exponent = gathered[..., c] * dy * dy + gathered[..., c + 1] * dy * dx + gathered[..., c + 2] * dx * dx
    weight = torch.exp(exponent) * mask.to(pos.dtype)
    out = torch.einsum('bqpk,bqkc->bqpc', weight, gathered[:, :, 0, :, :c])
    return out if grouped else out.squeeze(2)


def render_gaussian_field_exhaustive(amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor,
                                     opacity: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Brute-force reference: the field summed over **every** Gaussian of the image.

    Same arguments and result as :func:`render_gaussian_field`, with no truncation.
    Memory O(Q * h * w): for tests and small images only.
    """
    b, c, h, w = amplitude.shape
    pos = lr_pixel_position(coord, (h, w))  # [B,Q,2]
    centres = torch.stack(torch.meshgrid(torch.arange(h, device=coord.device, dtype=pos.dtype),
                                         torch.arange(w, device=coord.device, dtype=pos.dtype),
                                         indexing='ij'), dim=-1).reshape(1, 1, h * w, 2)
    offset = pos.unsqueeze(2) - centres  # [B,Q,hw,2]
    weight = gaussian_weight(offset, sigma.flatten(2).transpose(1, 2).unsqueeze(1),
                             rho.flatten(2).transpose(1, 2)[..., 0].unsqueeze(1))  # [B,Q,hw]
    values = (amplitude * opacity).flatten(2)  # [B,C,hw]
    return torch.einsum('bqn,bcn->bqc', weight, values)


def truncation_bound(sigma_max: float, radius: int) -> float:
    """Upper bound on the summed weight of the Gaussians a radius-``radius`` window ignores.

    A query is within 0.5 LR px (per axis) of its nearest pixel, so an ignored Gaussian lies
    at least ``k - 0.5`` px away along some axis, ``k >= radius + 1`` being its Chebyshev ring
    (8k pixels). Along that axis the quadratic form is at least ``d^2 / sigma_axis^2`` whatever
    rho is (``x^T Sigma^-1 x >= x_j^2 / Sigma_jj``), hence each weight is at most
    ``exp(-0.5 (k - 0.5)^2 / sigma_max^2)``. The field error is then at most this bound times
    ``max_i |o_i v_i|``.
    """
    total = 0.0
    for k in range(radius + 1, radius + 64):
        total += 8 * k * math.exp(-0.5 * (k - 0.5) ** 2 / sigma_max**2)
    return total
