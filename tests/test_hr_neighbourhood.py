"""Tests of the 3x3 HR neighbourhood (gaussiansr_arch/archs/hr_neighbourhood.py) and of the
GaussianSR path that renders each distinct HR pixel of training queries once."""

import torch
import torch.nn.functional as F

import gaussiansr_arch.archs.gaussiansr_arch as gaussiansr_module
from gaussiansr_arch.archs.coordinates import make_coord
from gaussiansr_arch.archs.hr_neighbourhood import grid_neighbourhood, grid_pixel_index, neighbourhood_points

SIZES = [(20, 20), (31, 17), (7, 45)]  # one HR grid per image, as a batch of mixed-scale crops


def small_model(**overrides) -> gaussiansr_module.GaussianSR:
    """A small GaussianSR (both streams, a 3x3 bank) for tests about query paths."""
    opt = dict(
        encoder_opt={'num_feat': 16, 'num_block': 1}, splat_channels=4, bank_size=9, decoder_hidden=[16], num_freq=16
    )
    return gaussiansr_module.GaussianSR(**{**opt, **overrides})


def sampled_pixel_queries(sizes, num_queries: int, seed: int = 0, dtype=torch.float32):
    """[B,Q,2] coord and cell of distinct random pixel centres, one grid per image (LIIF's sampler)."""
    g = torch.Generator().manual_seed(seed)
    coords, cells = [], []
    for h, w in sizes:
        pick = torch.randperm(h * w, generator=g)[:num_queries]
        coords.append(make_coord((h, w), dtype=dtype)[pick])
        cells.append(torch.tensor([2 / h, 2 / w], dtype=dtype).expand(num_queries, 2))
    return torch.stack(coords), torch.stack(cells)


def test_grid_neighbourhood_lists_the_same_points_once():
    coord, cell = sampled_pixel_queries(SIZES, 120)
    grid = grid_neighbourhood(coord, cell)
    assert grid is not None
    expected = neighbourhood_points(coord, cell)  # [B,Q,9,2]
    got = grid.points.flatten(0, 1)[grid.index.flatten()].view_as(expected)
    outside = (expected.abs() > 1).any(dim=-1)
    assert torch.equal(grid.outside, outside)
    assert (got - expected)[~outside].abs().max() <= 2.5e-7  # coord +- cell rounding only
    assert torch.equal(got[:, :, 4], coord)  # the query itself: bit-identical (axis_coord arithmetic)
    # Each image's points are distinct, and no more than its neighbourhoods need.
    for i in range(len(SIZES)):
        used = grid.index[i][~grid.outside[i]].unique()
        keys = (got[i][~grid.outside[i]] * 1e4).round().unique(dim=0)
        assert len(used) == len(keys)
        assert torch.all((used >= i * grid.points.shape[1]) & (used < (i + 1) * grid.points.shape[1]))
    assert grid.points.shape[1] < 9 * 120


def test_off_grid_queries_are_rejected():
    coord, cell = sampled_pixel_queries(SIZES, 50)
    assert grid_pixel_index(coord, cell) is not None
    shifted = coord.clone()
    shifted[1, 3, 0] += 0.3 * cell[1, 3, 0]  # a third of a pixel off its centre
    assert grid_pixel_index(shifted, cell) is None
    varying = cell.clone()
    varying[0, 0] *= 2  # two grids in one image
    assert grid_pixel_index(coord, varying) is None
    assert grid_pixel_index(torch.rand(2, 10, 2) * 2 - 1, torch.full((2, 10, 2), 0.1)) is None
    assert grid_neighbourhood(coord[:, :0], cell[:, :0]) is None


def test_grid_path_equals_per_query_neighbourhoods(monkeypatch):
    """Training queries (pixel centres) through the deduplicated path == the general path, value and gradients."""
    torch.manual_seed(0)
    model = small_model().train()
    monkeypatch.setattr(F, 'gumbel_softmax', lambda logits, tau=1.0, hard=False, dim=-1: torch.softmax(logits, dim))
    lq = torch.rand(3, 3, 9, 11)
    coord, cell = sampled_pixel_queries([(18, 22), (27, 33), (9, 11)], 90)

    def run():
        model.zero_grad()
        out = model(lq, coord, cell)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    calls = []
    real = gaussiansr_module.grid_neighbourhood
    monkeypatch.setattr(gaussiansr_module, 'grid_neighbourhood', lambda *a: calls.append(1) or real(*a))
    fast, fast_grads = run()
    assert calls, 'the grid path was not taken'
    monkeypatch.setattr(gaussiansr_module, 'grid_neighbourhood', lambda *a: None)
    slow, slow_grads = run()
    torch.testing.assert_close(fast, slow, rtol=0, atol=2e-5)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_query_is_invariant_to_decoder_chunking(monkeypatch):
    """Decoding in row chunks (CPU) gives the result of one pass, for both decoders; no queries give [B,0,3]."""
    torch.manual_seed(1)
    lq = torch.rand(2, 3, 6, 7)
    coord, cell = sampled_pixel_queries([(12, 14), (18, 21)], 40)
    for decoder in ('lte', 'mlp'):
        model = small_model(decoder=decoder).eval()
        monkeypatch.setattr(gaussiansr_module, 'DECODER_ROWS_CPU', 10**6)
        whole = model(lq, coord, cell)
        monkeypatch.setattr(gaussiansr_module, 'DECODER_ROWS_CPU', 14)  # 7 queries per chunk, last one short
        torch.testing.assert_close(model(lq, coord, cell), whole, rtol=0, atol=1e-6)
        assert model(lq, coord[:, :0], cell[:, :0]).shape == (2, 0, 3)
