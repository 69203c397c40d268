"""Tests of bicubic interpolation (gaussiansr_arch/archs/interpolation.py): the separable
whole-grid form must equal PyTorch's grid_sample at the same pixel centres."""

import pytest
import torch

from gaussiansr_arch.archs.coordinates import make_coord
from gaussiansr_arch.archs.interpolation import bicubic_matrix, cubic_weights, resize_bicubic, sample_bicubic


@pytest.mark.parametrize('size', [(7, 9), (20, 13), (64, 64), (3, 5)], ids=str)
def test_resize_equals_grid_sample_at_pixel_centres(size):
    """Up- and down-sampling, non-square, and outputs smaller than the 4-tap stencil."""
    g = torch.Generator().manual_seed(sum(size))
    feat = torch.randn(2, 5, 8, 11, dtype=torch.float64, generator=g)
    coord = make_coord(size, dtype=torch.float64).unsqueeze(0).expand(2, -1, -1)
    expected = sample_bicubic(feat, coord).view(2, *size, 5)
    for i in range(2):
        torch.testing.assert_close(resize_bicubic(feat[i], size), expected[i], rtol=0, atol=1e-12)


def test_resize_gradient_equals_grid_sample_gradient():
    feat = torch.randn(4, 6, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(13, 17, 4, dtype=torch.float64)
    (resize_bicubic(feat, (13, 17)) * weights).sum().backward()
    ours, feat.grad = feat.grad, None
    coord = make_coord((13, 17), dtype=torch.float64).unsqueeze(0)
    (sample_bicubic(feat.unsqueeze(0), coord).view(13, 17, 4) * weights).sum().backward()
    torch.testing.assert_close(ours, feat.grad, rtol=0, atol=1e-12)


def test_interpolation_matrix_rows():
    """Each row's weights sum to one (a constant stays constant) and an identity resize is the identity."""
    weights = cubic_weights(torch.rand(100, dtype=torch.float64))
    torch.testing.assert_close(weights.sum(-1), torch.ones(100, dtype=torch.float64))
    matrix = bicubic_matrix(37, 10, dtype=torch.float64)
    torch.testing.assert_close(matrix.sum(1), torch.ones(37, dtype=torch.float64))
    torch.testing.assert_close(bicubic_matrix(10, 10, dtype=torch.float64), torch.eye(10, dtype=torch.float64))
