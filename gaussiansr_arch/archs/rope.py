"""2D rotary position embeddings with learned mixed frequencies (RoPE-Mixed, Heo et al., ECCV 2024).

What GSASR's released "enhanced" models (``HATNOUP_ROPE_AMP`` encoder, ``Fea2GS_ROPE_AMP`` head) put in
their attentions instead of a relative-position bias. Each head splits its channels into consecutive
pairs, read as complex numbers; pair ``j`` of a token at position ``(x, y)`` is multiplied by
``exp(i (x fx[h, j] + y fy[h, j]))`` in both the queries and the keys, so the logits depend on the
positions only through their difference. ``rope_freqs`` [2, heads, head_dim / 2] (x then y
frequencies) is a learned parameter.

**Positions** are those of a raster ``side`` tokens wide: token ``t`` is at
``(x, y) = (t % side, t // side)``, and a sequence of ``n`` tokens takes the first ``n``. A window
whose width is ``side`` gets its own (column, row); the official attentions whose queries and keys
come from windows of different widths (the overlapping cross-attention, the seed -> feature
cross-attention) number both on the raster of the wider one, and so does this module (that is what
their weights were trained with).

Everything runs in float32, as the official code (it turns autocast off for the angles and rotates
``q.float()``); the rotated tensors are cast back to the input dtype.
"""

import math

import torch
from torch import nn

# The official base of the frequency magnitudes (``rope_theta``).
ROPE_THETA = 10.0


def raster_positions(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) float32 positions [side^2] of the tokens of a ``side``-wide raster, row-major."""
    t = torch.arange(side * side)
    return (t % side).float(), torch.div(t, side, rounding_mode='floor').float()


def mixed_frequencies(head_dim: int, heads: int, theta: float = ROPE_THETA) -> torch.Tensor:
    """Initial [2, heads, head_dim / 2] frequencies: per head a random direction ``a`` and its normal.

    Magnitudes ``theta ** (-4 k / head_dim)`` for ``k < head_dim / 4``; the x frequencies are
    ``m cos(a)`` then ``m cos(a + pi / 2)``, the y ones ``m sin(a)`` then ``m sin(a + pi / 2)``.
    """
    if head_dim % 4:
        raise ValueError(f'RoPE needs a head dimension divisible by 4, got {head_dim}')
    magnitude = theta ** (-torch.arange(0, head_dim, 4).float() / head_dim)
    angle = torch.rand(heads, 1) * 2 * math.pi
    directions = torch.cat([angle, angle + math.pi / 2], dim=1)  # [heads, 2]
    fx = (magnitude[None, None] * torch.cos(directions)[..., None]).flatten(1)
    fy = (magnitude[None, None] * torch.sin(directions)[..., None]).flatten(1)
    return torch.stack([fx, fy])


def rotations(freqs: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Complex [heads, n, head_dim / 2] unit rotations ``exp(i (x fx + y fy))`` for positions [n]."""
    with torch.autocast(x.device.type, enabled=False):
        freqs = freqs.float()
        angle = x[None, :, None] * freqs[0][:, None] + y[None, :, None] * freqs[1][:, None]
        return torch.polar(torch.ones_like(angle), angle)


def rotate(t: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """[N, heads, n, head_dim] queries or keys rotated by the first ``n`` of [heads, >= n, head_dim / 2]."""
    pairs = torch.view_as_complex(t.float().contiguous().view(*t.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation[:, : t.shape[2]]).flatten(3).to(t.dtype)


def add_rotary_positions(owner: nn.Module, heads: int, head_dim: int, side: int) -> None:
    """Give ``owner`` the learned frequencies and the positions of a ``side``-wide raster.

    The three tensors belong to the attention module itself (not a submodule), as in the official
    attentions, so their names map by identity; ``owner_rotations`` reads them in ``forward``.
    """
    owner.rope_freqs = nn.Parameter(mixed_frequencies(head_dim, heads))
    x, y = raster_positions(side)
    owner.register_buffer('rope_t_x', x)
    owner.register_buffer('rope_t_y', y)


def owner_rotations(owner: nn.Module) -> torch.Tensor:
    """The rotations of the module ``add_rotary_positions`` set up: [heads, side^2, head_dim / 2]."""
    return rotations(owner.rope_freqs, owner.rope_t_x, owner.rope_t_y)
