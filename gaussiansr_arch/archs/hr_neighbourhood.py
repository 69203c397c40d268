"""The 3x3 HR-pixel neighbourhood of queries, which the LTE decoder's 3x3 conv reads.

``neighbourhood_points`` is the general form: nine points around each query, one output
cell apart. ``grid_neighbourhood`` is the same set of points when the queries sit on the
pixel centres of one HR grid per image, as every training query does (LIIF's sampler picks
pixels of the HR crop): neighbourhoods of nearby queries then share HR pixels, so each
distinct pixel is listed once and every query points at its nine. At scale 1.5 with 2304
queries on a 72x72 crop that is ~5,200 points to render instead of 20,736.
"""

from dataclasses import dataclass

import torch

from gaussiansr_arch.archs.coordinates import axis_coord_at, pixel_position

# A query is "on the grid" when its pixel index is within this of an integer (float32
# coordinates of a 10,000-pixel axis are exact to ~1e-4 pixel).
GRID_TOLERANCE = 1e-3


def stencil_offsets(device=None) -> torch.Tensor:
    """[9, 2] integer (row, col) offsets of a 3x3 neighbourhood, row-major (centre at index 4)."""
    steps = torch.arange(-1, 2, device=device)
    return torch.stack(torch.meshgrid(steps, steps, indexing='ij'), dim=-1).reshape(9, 2)


def neighbourhood_points(coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """The 3x3 HR-pixel neighbourhood of arbitrary queries.

    Args:
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1].
        cell (Tensor): [B,Q,2] output-pixel size.

    Returns:
        Tensor: [B,Q,9,2] points (row-major); some may lie outside [-1, 1].
    """
    unit = stencil_offsets(coord.device).to(coord.dtype)
    return coord.unsqueeze(2) + unit * cell.unsqueeze(2)


@dataclass
class GridNeighbourhood:
    """Distinct HR pixels of the queries' 3x3 neighbourhoods.

    Attributes:
        points (Tensor): [B,N,2] pixel-centre coordinates, N = the largest per-image count
            (shorter lists are padded with the image centre, which no index refers to).
        pixels (Tensor): [B,N] the same points as flat pixel indices ``row * W + col`` of their
            image's grid (0 for padding), for lookups in maps rendered on the whole grid.
        sizes (list[tuple[int, int]]): (H, W) of each image's grid.
        index (Tensor): [B,Q,9] row of each neighbour in ``points.flatten(0, 1)``.
        outside (Tensor): [B,Q,9] bool, neighbours beyond the image border (their features are 0).
    """

    points: torch.Tensor
    pixels: torch.Tensor
    sizes: list[tuple[int, int]]
    index: torch.Tensor
    outside: torch.Tensor


def grid_pixel_index(coord: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Integer pixel indices of queries on the pixel centres of one (H, W) grid per image.

    Args:
        coord (Tensor): [B,Q,2] query (row, col) in [-1, 1].
        cell (Tensor): [B,Q,2] output-pixel size, the same for every query of an image.

    Returns:
        tuple[Tensor, Tensor] | None: (index [B,Q,2], grid size [B,1,2]) as int64, or None when
        the cells vary within an image or a query is not on a pixel centre of its grid.
    """
    if coord.shape[1] == 0 or not torch.equal(cell, cell[:, :1].expand_as(cell)):
        return None
    size = 2 / cell[:, :1].double()
    grid = torch.round(size)
    if bool(((size - grid).abs() > GRID_TOLERANCE).any()) or bool((grid < 1).any()):
        return None
    pos = pixel_position(coord.double(), grid)
    index = torch.round(pos)
    if bool(((pos - index).abs() > GRID_TOLERANCE).any()):
        return None
    index, grid = index.long(), grid.long()
    if bool((index < 0).any()) or bool((index >= grid).any()):
        return None
    return index, grid


def grid_neighbourhood(coord: torch.Tensor, cell: torch.Tensor) -> GridNeighbourhood | None:
    """``neighbourhood_points`` with each distinct HR pixel once (None when queries are off-grid).

    The points are computed by :func:`~gaussiansr_arch.archs.coordinates.axis_coord_at`, so a
    neighbour equal to a query has exactly the query's coordinate.
    """
    on_grid = grid_pixel_index(coord, cell)
    if on_grid is None:
        return None
    index, grid = on_grid  # [B,Q,2], [B,1,2]
    b, q = index.shape[:2]
    device = coord.device
    neighbours = index.unsqueeze(2) + stencil_offsets(device)  # [B,Q,9,2]
    limit = grid.unsqueeze(2) - 1
    outside = ((neighbours < 0) | (neighbours > limit)).any(dim=-1)
    neighbours = torch.minimum(neighbours.clamp_min(0), limit)  # outside ones are masked by the caller

    # One key per (image, row, col); sorting keys groups them by image.
    width = grid[:, 0, 1].view(b, 1, 1)
    area = int((grid[:, 0, 0] * grid[:, 0, 1]).max())
    image = torch.arange(b, device=device).view(b, 1, 1)
    keys = image * area + neighbours[..., 0] * width + neighbours[..., 1]
    unique_keys, inverse = torch.unique(keys.flatten(), return_inverse=True)
    owner = torch.div(unique_keys, area, rounding_mode='floor')
    counts = torch.bincount(owner, minlength=b)
    per_image = int(counts.max())
    first = torch.cumsum(counts, 0) - counts
    slot = owner * per_image + torch.arange(len(unique_keys), device=device) - first[owner]

    pixel = unique_keys - owner * area
    owner_width = grid[owner, 0, 1]
    rows, cols = torch.div(pixel, owner_width, rounding_mode='floor'), pixel % owner_width
    points = torch.stack(
        [axis_coord_at(rows, grid[owner, 0, 0], coord.dtype), axis_coord_at(cols, owner_width, coord.dtype)], dim=-1
    )
    padded = points.new_zeros(b * per_image, 2)  # padding rows: the image centre, never referenced
    padded[slot] = points
    pixels = pixel.new_zeros(b * per_image)
    pixels[slot] = pixel
    sizes = [tuple(size) for size in grid[:, 0].tolist()]
    return GridNeighbourhood(
        points=padded.view(b, per_image, 2),
        pixels=pixels.view(b, per_image),
        sizes=sizes,
        index=slot[inverse].view(b, q, 9),
        outside=outside,
    )
