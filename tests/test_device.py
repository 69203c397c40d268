"""The method, checked on one device: ``pytest tests/test_device.py --device cuda`` (CPU by default).

Everything whose correctness could depend on the device (kernels, chunk sizes chosen per
device type, the hand-written field backward, float64 support) for every registered method: the
field against the exhaustive sum, gradcheck in float64 on the device, scale consistency, a
training step through the BasicSR model for every method descriptor, and LIIF parity with the
official outputs (when ``../shared`` is there). What every arch must do (batch independence,
upscale == forward, chunk invariance, device == CPU ...) is tests/test_contract.py, also run with
``--device``.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_gaussian_field import SIGMA_MAX, max_premultiplied_amplitude, query_points, random_field
from test_liif import CASES, LIIF_REF, read_rgb, to_tensor

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.archs.gaussian_field import (
    evaluate_gaussian_table,
    gaussian_table,
    render_gaussian_field,
    render_gaussian_field_exhaustive,
    truncation_bound,
)
from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.archs.liif_arch import LIIF
from gaussiansr_arch.utils.methods import get_method, methods

from train_helpers import unit_model_opt

TINY_GAUSSIANSR = {k: v for k, v in get_method('GaussianSR').network(tiny=True).items() if k != 'type'}
# Every registered method at its descriptor's tiny configuration (the contract: tests/test_contract.py).
TINY_METHODS = {method.key: method.network(tiny=True) for method in methods()}


def queries(batch: int, size, device):
    coord = make_coord(size, device=device).unsqueeze(0).expand(batch, -1, -1)
    return coord, make_cell(size, coord.shape[1], device=device).unsqueeze(0).expand(batch, -1, -1)


# ---------------------------------------------------------------- the Gaussian field
def test_field_equals_exhaustive_sum(device):
    g = torch.Generator().manual_seed(3)
    fields = random_field(2, 5, 9, 7, generator=g)
    coord = query_points(2, 300, generator=g)
    tolerance = truncation_bound(SIGMA_MAX, 3) * max_premultiplied_amplitude(fields[0], fields[3]) + 1e-12
    truncated = render_gaussian_field(*[t.to(device) for t in fields], coord.to(device)).cpu()
    assert (truncated - render_gaussian_field_exhaustive(*fields, coord)).abs().max().item() <= tolerance


def test_field_gradcheck_float64(device):
    g = torch.Generator().manual_seed(11)
    inputs = tuple(t.to(device).requires_grad_(True) for t in random_field(1, 2, 4, 5, generator=g))
    coord = query_points(1, 6, generator=g)[:, :10].to(device)

    def field(a, s, r, o):
        return evaluate_gaussian_table(gaussian_table(a, s, r, o, 2), coord, 2, chunk_size=4)

    assert torch.autograd.gradcheck(field, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_field_chunk_invariance(device):
    g = torch.Generator().manual_seed(21)
    table = gaussian_table(*[t.to(device) for t in random_field(2, 3, 5, 6, generator=g)], 3)
    coord = query_points(2, 40, generator=g).to(device)
    whole = evaluate_gaussian_table(table, coord, 3, chunk_size=10**6)
    for chunk in (1, 7, 41):
        torch.testing.assert_close(
            evaluate_gaussian_table(table, coord, 3, chunk_size=chunk), whole, rtol=0, atol=1e-12
        )


# ---------------------------------------------------------------- every arch (and tests/test_contract.py)
def test_gaussiansr_scale_consistent_field(device):
    """The same continuous point gives the same rendered features whatever output size asked it."""
    torch.manual_seed(0)
    net = GaussianSR(**TINY_GAUSSIANSR).to(device).eval()
    with torch.no_grad():
        state = net.encode(torch.rand(1, 3, 6, 7, device=device))
        points = torch.rand(1, 40, 2, device=device) * 2 - 1
        alone = net.render_features(state, points)
        mixed = net.render_features(state, torch.cat([points, torch.rand(1, 25, 2, device=device) * 2 - 1], 1))
    assert (alone - mixed[:, :40]).abs().max().item() <= 1e-6


def check_training_step(network: dict, device: torch.device, tmp_path) -> None:
    """One optimiser step of ArbitraryScaleSRModel on the device lowers the loss on that batch."""
    from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel

    model = ArbitraryScaleSRModel(unit_model_opt(tmp_path, network, device.type, ema_decay=0))
    assert model.device.type == device.type
    g = torch.Generator().manual_seed(0)
    batch = {
        'lq': torch.rand(2, 3, 12, 12, generator=g),
        'gt': torch.rand(2, 64, 3, generator=g),
        'coord': torch.rand(2, 64, 2, generator=g) * 2 - 1,
        'cell': torch.full((2, 64, 2), 2 / 24),
    }
    losses = []
    for it in range(1, 4):
        model.feed_data(batch)
        model.optimize_parameters(it)
        losses.append(model.get_current_log()['l_pix'])
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


@pytest.mark.parametrize('arch', list(TINY_METHODS))
def test_training_step_through_the_model(arch, device, tmp_path):
    check_training_step(TINY_METHODS[arch], device, tmp_path)


def test_liif_parity_on_device(device):
    if not (LIIF_REF / 'edsr-baseline-liif.pth').is_file():
        pytest.skip(f'{LIIF_REF} is absent')
    from gaussiansr_arch.tools import convert_liif

    net = LIIF().to(device).eval()
    converted = convert_liif.convert_checkpoint(convert_liif.load_checkpoint(str(LIIF_REF / 'edsr-baseline-liif.pth')))
    net.load_state_dict(converted['params'])
    case = CASES[0]
    with torch.no_grad():
        lq = to_tensor(read_rgb(LIIF_REF / 'outputs' / f'{case["case"]}_lr.png')).to(device)
        ours = net.upscale(lq, size=tuple(case['out_size']))[0].permute(1, 2, 0).cpu().numpy()
    official = np.load(LIIF_REF / 'outputs' / f'{case["case"]}_liif.npz')['sr']
    assert np.abs(np.clip(ours, 0, 1) - official).max() <= 1e-4


def test_image_skip_on_device(device):
    torch.manual_seed(0)
    net = GaussianSR(**TINY_GAUSSIANSR, image_skip='bilinear').to(device).eval()
    lq = torch.rand(1, 3, 5, 6, device=device)
    coord, cell = queries(1, (11, 13), device)
    plain = GaussianSR(**TINY_GAUSSIANSR).to(device).eval()
    plain.load_state_dict(net.state_dict())
    image = F.grid_sample(
        (lq - 0.5) / 0.5, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border', align_corners=False
    )[:, :, 0].transpose(1, 2)
    with torch.no_grad():
        diff = net(lq, coord, cell) - plain(lq, coord, cell)
    assert (diff - 0.5 * image).abs().max().item() <= 1e-5
