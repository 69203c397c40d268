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
never O(h*w*H*W) or a dense HR canvas.
``truncation_bound`` says how much the ignored Gaussians can contribute at most;
``render_gaussian_field_exhaustive`` is the brute-force reference (every Gaussian of the
image) that tests compare against.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gaussiansr_arch.archs.coordinates import pixel_position


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


def field_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the field is built and summed in: float32 for half types, else ``dtype``.

    Under mixed precision (autocast) the features arrive in bf16/fp16. The field stays in
    float32 there: 1 / (1 - rho^2) and 1 / sigma^2 overflow fp16's range for sharp kernels, bf16's
    8-bit mantissa puts ~0.4 % error on the exponent a dy^2 + b dy dx + c dx^2 (i.e. on every
    weight exp(.)), and each query sums 49 weighted terms. The cost is small next to the decoder,
    which autocast runs in half precision.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def gaussian_table(
    amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor, opacity: torch.Tensor, radius: int = 3
) -> torch.Tensor:
    """Everything a Gaussian contributes, one row per LR pixel, ready for row lookups.

    Built once per encoded image and reused by every query chunk. The border of ``radius``
    zero rows stands for the Gaussians that do not exist beyond the image (zero amplitude), so
    every K x K window is a plain row lookup with no clamping or masking.

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
    dtype = field_dtype(amplitude.dtype)
    with torch.autocast(amplitude.device.type, enabled=False):
        coefficients = quadratic_form_coefficients(sigma.to(dtype), rho.to(dtype))
        table = torch.cat([amplitude.to(dtype) * opacity.to(dtype), coefficients], dim=1)
    table = F.pad(table, (radius,) * 4)
    return table.permute(0, 2, 3, 1).contiguous()  # contiguous: the lookups then need no copy


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

    Each point sums the Gaussians of the K x K LR pixels (K = 2 * radius + 1) around its
    nearest LR pixel (the nearest border pixel for points beyond the image). Points are
    processed ``chunk_size`` at a time and the backward pass is written by hand (it recomputes
    the weights chunk by chunk), so memory stays O(chunk * K^2) beyond the result and the
    table's gradient whatever the number of points; ``coord`` never receives a gradient.

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
    if chunk_size <= 0:
        raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
    b, hp, wp, width = table.shape
    pos = pixel_position(coord.detach(), (hp - 2 * radius, wp - 2 * radius)).reshape(b, -1, 2)
    image = torch.arange(b, device=coord.device).view(b, 1).expand(b, pos.shape[1])
    dtype = field_dtype(table.dtype)
    with torch.autocast(table.device.type, enabled=False):  # exponent and sums in float32 (field_dtype)
        out = _GaussianField.apply(table.to(dtype), pos.reshape(-1, 2).to(dtype), image.reshape(-1), radius, chunk_size)
    return out.view(*coord.shape[:-1], width - 3)


class _WindowGeometry:
    """Where each point's K x K window lies in a padded ``gaussian_table``, and its offsets.

    Shared by every chunk of one call. ``dy``/``dx`` below are point-minus-centre offsets in
    LR pixels along rows / columns, laid out [n,K,1] / [n,1,K] so that the window's [n,K,K]
    terms come from broadcasting instead of stacked copies.
    """

    def __init__(self, table_shape: Sequence[int], radius: int, pos: torch.Tensor):
        _, self.hp, self.wp, width = table_shape
        self.radius, self.k, self.channels = radius, 2 * radius + 1, width - 3
        self.h, self.w = self.hp - 2 * radius, self.wp - 2 * radius
        steps = torch.arange(-radius, radius + 1, device=pos.device)
        self.row_steps = steps.to(pos.dtype).view(1, self.k, 1)
        self.col_steps = steps.to(pos.dtype).view(1, 1, self.k)
        self.row_offsets = (steps.view(self.k, 1) * self.wp + steps.view(1, self.k)).reshape(-1)  # [K2]
        self.limit = pos.new_tensor([self.h - 1, self.w - 1])

    def chunk(self, pos: torch.Tensor, image: torch.Tensor):
        """For n points: (nearest [n] flat LR pixel in [B*h*w], table rows [n*K2], dy [n,K,1], dx [n,1,K])."""
        nearest = torch.minimum(torch.floor(pos + 0.5).clamp_min(0), self.limit)  # border pixel beyond the image
        frac = pos - nearest
        row, col = nearest.long().unbind(-1)
        centre = (image * self.hp + row + self.radius) * self.wp + col + self.radius
        rows = (centre.unsqueeze(1) + self.row_offsets).reshape(-1)
        dy = frac[:, 0].view(-1, 1, 1) - self.row_steps
        dx = frac[:, 1].view(-1, 1, 1) - self.col_steps
        return (image * self.h + row) * self.w + col, rows, dy, dx

    def gather(self, flat_table: torch.Tensor, rows: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor):
        """Amplitudes [n,K,K,C] and weights [n,K,K] of the window's Gaussians."""
        # index_select copies whole table rows: much faster than gathering per element.
        gathered = flat_table.index_select(0, rows).view(-1, self.k, self.k, self.channels + 3)
        a, b, c = gathered[..., self.channels], gathered[..., self.channels + 1], gathered[..., self.channels + 2]
        exponent = torch.addcmul(torch.addcmul(a * (dy * dy), b, dy * dx), c, dx * dx)
        return gathered[..., : self.channels], exponent.exp_()


class _GaussianField(torch.autograd.Function):
    """Chunked field evaluation with a hand-written, recomputing backward (see evaluate_gaussian_table)."""

    @staticmethod
    def forward(ctx, table, pos, image, radius, chunk_size):
        geometry = _WindowGeometry(table.shape, radius, pos)
        flat_table = table.reshape(-1, table.shape[-1])
        out = pos.new_empty(pos.shape[0], geometry.channels)
        for start in range(0, pos.shape[0], chunk_size):
            part = slice(start, start + chunk_size)
            _, rows, dy, dx = geometry.chunk(pos[part], image[part])
            amplitude, weight = geometry.gather(flat_table, rows, dy, dx)
            torch.bmm(
                weight.view(-1, 1, geometry.k**2),
                amplitude.reshape(-1, geometry.k**2, geometry.channels),
                out=out[part].unsqueeze(1),
            )
        ctx.save_for_backward(table, pos, image)
        ctx.radius, ctx.chunk_size = radius, chunk_size
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        table, pos, image = ctx.saved_tensors
        geometry = _WindowGeometry(table.shape, ctx.radius, pos)
        b, hp, wp, width = table.shape
        c, k = geometry.channels, geometry.k
        flat_table = table.reshape(-1, width)
        # Gradients of each point's whole window, summed per nearest LR pixel: [B*h*w, K*K*(C+3)].
        # One row add per point (not per Gaussian); ``fold`` then adds each window onto the table.
        window_grad = table.new_zeros(b * geometry.h * geometry.w, k * k * width)
        for start in range(0, pos.shape[0], ctx.chunk_size):
            part = slice(start, start + ctx.chunk_size)
            nearest, rows, dy, dx = geometry.chunk(pos[part], image[part])
            amplitude, weight = geometry.gather(flat_table, rows, dy, dx)
            grad = grad_out[part]  # [n,C]
            # out = sum_k weight_k v_k: d/dv_k = weight_k grad, d/dweight_k = <v_k, grad>; and
            # weight = exp(a dy^2 + b dy dx + c dx^2), so d/da_k = d/dweight_k * weight_k * dy^2 etc.
            grad_exponent = torch.einsum('nijc,nc->nij', amplitude, grad).mul_(weight)
            grad_rows = torch.empty(len(nearest), k, k, width, dtype=table.dtype, device=table.device)
            torch.mul(weight.unsqueeze(-1), grad.view(-1, 1, 1, c), out=grad_rows[..., :c])
            torch.mul(grad_exponent, dy * dy, out=grad_rows[..., c])
            torch.mul(grad_exponent, dy * dx, out=grad_rows[..., c + 1])
            torch.mul(grad_exponent, dx * dx, out=grad_rows[..., c + 2])
            window_grad.index_add_(0, nearest, grad_rows.view(len(nearest), -1))
        # fold's column layout is (channel, window position); windows start at their pixel in the padded table.
        columns = window_grad.view(b, -1, k * k, width).permute(0, 3, 2, 1).reshape(b, width * k * k, -1)
        grad_table = F.fold(columns, (hp, wp), k).permute(0, 2, 3, 1)
        return grad_table, None, None, None, None


def render_gaussian_field_exhaustive(
    amplitude: torch.Tensor, sigma: torch.Tensor, rho: torch.Tensor, opacity: torch.Tensor, coord: torch.Tensor
) -> torch.Tensor:
    """Brute-force reference: the field summed over **every** Gaussian of the image.

    Same arguments and result as :func:`render_gaussian_field`, with no truncation.
    Memory O(Q * h * w): for tests and small images only.
    """
    b, c, h, w = amplitude.shape
    pos = pixel_position(coord, (h, w))  # [B,Q,2]
    centres = torch.stack(
        torch.meshgrid(
            torch.arange(h, device=coord.device, dtype=pos.dtype),
            torch.arange(w, device=coord.device, dtype=pos.dtype),
            indexing='ij',
        ),
        dim=-1,
    ).reshape(1, 1, h * w, 2)
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
    ``max_i |o_i v_i|``.
    """
    total = 0.0
    for k in range(radius + 1, radius + 64):
        total += 8 * k * math.exp(-0.5 * (k - 0.5) ** 2 / sigma_max**2)
    return total
