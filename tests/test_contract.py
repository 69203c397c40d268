"""What every arch must do, for every registered method descriptor and variant (``utils/methods.py``).

On its tiny configuration (the descriptor's ``tiny``): ``upscale`` equals ``forward`` at the pixel
centres, an image gives the same output alone and in a batch, the chunk size changes nothing,
several sizes come from one encoding, training reaches every parameter, and the device gives the
CPU's image (``pytest tests/test_contract.py --device cuda``; ``benchmarks/gpu_check.py`` runs it).

A new method is checked here once its arch module registers its descriptor; the ``check_*``
functions take a ``network_g`` so that tests/test_toy_method.py runs them on a method of its own.
"""

import inspect

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.coordinates import make_cell, make_coord
from gaussiansr_arch.data.protocol import PROTOCOLS
from gaussiansr_arch.utils.methods import method_networks, methods

# '<key>' and '<key>-<variant>' -> tiny network_g, for every registered method.
TINY_NETWORKS = dict(method_networks(tiny=True))


def build(network: dict) -> torch.nn.Module:
    """The arch of a ``network_g``, seeded, in eval mode."""
    torch.manual_seed(0)
    options = dict(network)
    return ARCH_REGISTRY.get(options.pop('type'))(**options).eval()


def queries(batch: int, size, device):
    """Every pixel centre of ``size`` and its cell, for ``batch`` images."""
    coord = make_coord(size, device=device).unsqueeze(0).expand(batch, -1, -1)
    return coord, make_cell(size, coord.shape[1], device=device).unsqueeze(0).expand(batch, -1, -1)


def check_upscale_forward_batch_and_chunks(network: dict, device: torch.device) -> None:
    """upscale == forward at the pixel centres; one image alone == in a batch; chunking changes nothing."""
    net = build(network).to(device)
    lq = torch.rand(3, 3, 7, 9, device=device)
    size = (15, 20)
    with torch.no_grad():
        batch = net.upscale(lq, size=size)
        alone = net.upscale(lq[1:2], size=size)
        coord, cell = queries(3, size, device)
        per_query = net(lq, coord, cell).transpose(1, 2).reshape(3, 3, *size)
        chunked = [net.upscale(lq, size=size, chunk_size=chunk) for chunk in (1, 37, 10**6)]
    assert batch.shape == (3, 3, *size) and torch.isfinite(batch).all()
    assert (batch[1:2] - alone).abs().max().item() <= 1e-5
    assert (batch - per_query).abs().max().item() <= 1e-5
    for other in chunked:
        assert (batch - other).abs().max().item() <= 1e-6


def check_several_sizes_from_one_encoding(network: dict, device: torch.device) -> None:
    """``upscale_many``: the encoder runs once, each size equals its own ``upscale``."""
    net = build(network).to(device)
    calls = []
    handle = net.encoder.register_forward_hook(lambda *_: calls.append(1))
    lq = torch.rand(1, 3, 6, 8, device=device)
    sizes = [(12, 16), (9, 12), (6, 8), (15, 20)]  # one scale for both axes (GSASR's constraint)
    with torch.no_grad():
        many = net.upscale_many(lq, sizes)
        assert len(calls) == 1
        singles = [net.upscale(lq, size=s) for s in sizes]
    handle.remove()
    assert [tuple(t.shape[-2:]) for t in many] == sizes
    assert all(torch.equal(a, b) for a, b in zip(many, singles))


def check_gradients_reach_every_parameter(network: dict, device: torch.device) -> None:
    """Training through ``forward`` (a different scale per image): no unused parameter (DDP-safe)."""
    net = build(network).to(device).train()
    lq = torch.rand(2, 3, 8, 8, device=device)
    coord = torch.rand(2, 50, 2, device=device) * 2 - 1
    cell = torch.cat([torch.full((1, 50, 2), 2 / 12), torch.full((1, 50, 2), 2 / 27)]).to(device)
    out = net(lq, coord, cell)
    assert out.shape == (2, 50, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def check_device_matches_cpu(network: dict, device: torch.device) -> None:
    """The same weights give the same image on the device as on the CPU."""
    net = build(network)
    lq = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        want = net.upscale(lq, scale=2.6)
        got = net.to(device).upscale(lq.to(device), scale=2.6).cpu()
    assert (want - got).abs().max().item() <= 1e-4


CHECKS = (
    check_upscale_forward_batch_and_chunks,
    check_several_sizes_from_one_encoding,
    check_gradients_reach_every_parameter,
    check_device_matches_cpu,
)


@pytest.mark.parametrize('check', CHECKS, ids=[c.__name__.removeprefix('check_') for c in CHECKS])
@pytest.mark.parametrize('name', list(TINY_NETWORKS))
def test_contract(name, check, device):
    torch.manual_seed(1)
    check(TINY_NETWORKS[name], device)


@pytest.mark.parametrize('method', methods(), ids=lambda m: m.key)
def test_descriptor_is_true(method):
    """The descriptor names a registered arch, a known protocol, and the arch's own image-skip option."""
    arch = ARCH_REGISTRY.get(method.arch)
    assert method.protocol in PROTOCOLS
    assert ('image_skip' in inspect.signature(arch).parameters) is method.image_skip
    assert set(method.tiny) <= set(inspect.signature(arch).parameters)
