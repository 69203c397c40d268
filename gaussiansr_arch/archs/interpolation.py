"""Interpolation of feature maps: at arbitrary points (``sample_grid``, any ``grid_sample`` mode, and
``sample_bicubic``), or bicubically onto a whole pixel grid (``resize_bicubic``).

The bicubic forms equal ``F.grid_sample(mode='bicubic', padding_mode='border', align_corners=False)``
(Keys' cubic, a = -0.75; taps beyond the border repeat the border pixel). On a pixel grid
the interpolation is separable, so a whole (H, W) map is two matrix products with sparse
(4 taps per row) interpolation matrices: plain GEMMs forward and backward, where the CPU
``grid_sample`` backward scatters tap by tap (3-8x slower on a training batch).
"""

import torch
import torch.nn.functional as F

from gaussiansr_arch.archs.coordinates import axis_coord, pixel_position

CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic convolution constant


# Interpolations of the LR image an arch may add to its output (LTE's skip; not in GaussianSR's
# paper or the authors' code, nor in LIIF): 'none' adds nothing.
IMAGE_SKIPS = ('none', 'bilinear', 'bicubic')


def sample_grid(feat: torch.Tensor, coord: torch.Tensor, mode: str = 'bicubic') -> torch.Tensor:
    """Interpolate [B,C,h,w] at [B,Q,2] (row, col) coordinates -> [B,Q,C] (border padding).

    ``mode`` is ``grid_sample``'s: 'bicubic' (default), 'bilinear' or 'nearest'.
    """
    grid = coord.flip(-1).unsqueeze(1)  # grid_sample wants (x, y)
    out = F.grid_sample(feat, grid, mode=mode, padding_mode='border', align_corners=False)
    return out[:, :, 0, :].transpose(1, 2)


def sample_bicubic(feat: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Bicubic interpolation of [B,C,h,w] at [B,Q,2] (row, col) coordinates -> [B,Q,C]."""
    return sample_grid(feat, coord, 'bicubic')


def check_image_skip(image_skip: str) -> str:
    """Return ``image_skip`` or raise ValueError naming the accepted values."""
    if image_skip not in IMAGE_SKIPS:
        raise ValueError(f'image_skip must be one of {IMAGE_SKIPS}, got {image_skip!r}')
    return image_skip


def image_skip_at(image: torch.Tensor, coord: torch.Tensor, image_skip: str) -> torch.Tensor | float:
    """The LR image [B,3,h,w] interpolated at [B,Q,2] by ``image_skip`` -> [B,Q,3] (0.0 for 'none')."""
    if image_skip == 'none':
        return 0.0
    return sample_grid(image, coord, image_skip)


def cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 from ``floor(x)`` for ``t = x - floor(x)``: [..., 4]."""
    a = CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)


def bicubic_matrix(out_size: int, in_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[out_size, in_size] matrix resampling an axis of ``in_size`` pixels onto ``out_size`` pixel centres.

    Output pixel ``i`` sits at ``axis_coord(out_size)[i]`` (the coordinates training queries
    use), i.e. at input position ``(i + 0.5) * in_size / out_size - 0.5``.
    """
    pos = pixel_position(axis_coord(out_size, device, dtype), in_size)
    base = torch.floor(pos)
    taps = (base.long().unsqueeze(1) + torch.arange(-1, 3, device=device)).clamp(0, in_size - 1)
    matrix = torch.zeros(out_size, in_size, device=device, dtype=dtype)
    return matrix.scatter_add_(1, taps, cubic_weights(pos - base))  # clamped taps add up at the border


def resize_bicubic(feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic map of one image's features on every pixel centre of an (H, W) grid.

    Args:
        feat (Tensor): [C,h,w] features.
        size (tuple[int, int]): (H, W) output grid.

    Returns:
        Tensor: [H,W,C] channels last (one row per pixel, as row lookups want).
    """
    c, h, w = feat.shape
    rows = bicubic_matrix(size[0], h, feat.device, feat.dtype)
    cols = bicubic_matrix(size[1], w, feat.device, feat.dtype)
    across = torch.matmul(cols, feat.permute(1, 2, 0))  # [h,W,C]: the small product first
    return (rows @ across.reshape(h, -1)).view(size[0], size[1], c)  # the large one as a single GEMM
