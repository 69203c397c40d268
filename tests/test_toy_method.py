"""A method costs one file: a toy method, defined here alone, gets everything the five methods get.

``ToySR`` and its descriptor live only in this file (as an ``archs/<name>_arch.py`` would hold
them). Registered, with no edit anywhere else, it is detected from its bare weights and loaded by
``gaussiansr_arch.load_model``, gets a model card with its description and reference schedule,
passes the contract (tests/test_contract.py) and the device training step (tests/test_device.py),
and appears in the benchmarks' model lists and the test option files.
"""

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from basicsr.utils.registry import ARCH_REGISTRY
from test_contract import CHECKS
from test_device import check_training_step
from torch import nn

import gaussiansr_arch
from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.tools import model_card
from gaussiansr_arch.utils.arch_detect import detect_network_opt, mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method, unregister_method
from gaussiansr_arch.utils.weights import save_weights

REPO = Path(__file__).resolve().parents[1]


@dataclass
class ToyState:
    lq: torch.Tensor
    feat: torch.Tensor


class ToySR(ArbitraryScaleArch):
    """Bilinear features and the cell in LR pixels -> an MLP -> RGB."""

    def __init__(self, encoder: str = 'edsr-baseline', encoder_opt: dict | None = None, hidden: int = 64):
        super().__init__()
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        self.toy_head = nn.Sequential(nn.Linear(self.encoder.out_channels + 2, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> ToyState:
        return ToyState(lq=lq, feat=feat)

    def query(self, state: ToyState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        grid = coord.flip(-1).unsqueeze(1).to(state.feat.dtype)
        sampled = F.grid_sample(state.feat, grid, mode='bilinear', padding_mode='border', align_corners=False)
        lr_cell = cell * cell.new_tensor(state.feat.shape[-2:]) / 2
        return self.toy_head(torch.cat([sampled[:, :, 0].transpose(1, 2), lr_cell], dim=-1)) + 0.5


def detect_toy(state, channels: int) -> dict | None:
    mlp = mlp_shape(state, 'toy_head.')
    if mlp is None or mlp[0] != channels + 2 or mlp[2] != 3 or len(mlp[1]) != 1:
        return None
    return {'hidden': mlp[1][0]}


TOY = Method(
    arch='ToySR',
    marker='toy_head.',
    detect=detect_toy,
    tiny={'encoder': 'edsr-baseline', 'encoder_opt': {'num_feat': 8, 'num_block': 1}, 'hidden': 16},
    protocol='liif',
    default_model='the toy model',
    description='EDSR-baseline encoder and a one-layer toy head',
    schedule=ReferenceSchedule(1_000, 16, 48, 'the toy paper (1 epoch x 1000 iterations)'),
    order=1000,
)


@pytest.fixture(scope='module', autouse=True)
def toy_registered():
    """ToySR in BasicSR's ARCH_REGISTRY and its descriptor registered, for this module only."""
    ARCH_REGISTRY.register(ToySR)
    register_method(TOY)
    yield
    unregister_method(TOY.arch)
    ARCH_REGISTRY._obj_map.pop(TOY.arch)


def test_detected_from_bare_weights_and_loaded(tmp_path):
    network = TOY.network(tiny=True)
    net = ARCH_REGISTRY.get('ToySR')(**TOY.tiny).eval()
    assert detect_network_opt(net.state_dict()) == network
    save_weights(str(tmp_path / 'bare.safetensors'), net.state_dict())  # no network_g recorded
    loaded = gaussiansr_arch.load_model(str(tmp_path / 'bare.safetensors'))
    lq = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert isinstance(loaded, ToySR) and torch.equal(loaded.upscale(lq, scale=2.5), net.upscale(lq, scale=2.5))


def test_model_card(tmp_path):
    run = tmp_path / 'toy'
    (run / 'models').mkdir(parents=True)
    opt = {'name': 'toy', 'network_g': TOY.network(tiny=True), 'train': {'total_iter': 10}}
    (run / 'train_toy.yml').write_text(yaml.safe_dump(opt), encoding='utf-8')
    (run / 'train_toy_20250101_000000.log').write_text('', encoding='utf-8')
    net = ARCH_REGISTRY.get('ToySR')(**TOY.tiny)
    save_weights(str(run / 'models' / 'net_g_10.pth'), net.state_dict(), TOY.network(tiny=True))
    model_card.run([str(run), '-o', str(tmp_path / 'card.md')])
    card = (tmp_path / 'card.md').read_text(encoding='utf-8')
    assert 'Not the toy model (EDSR-baseline encoder and a one-layer toy head)' in card
    assert 'The toy paper (1 epoch x 1000 iterations) trains 1,000 iterations' in card


@pytest.mark.parametrize('check', CHECKS, ids=[c.__name__.removeprefix('check_') for c in CHECKS])
def test_contract(check, device):
    check(TOY.network(tiny=True), device)


def test_device_training_step(device, tmp_path):
    check_training_step(TOY.network(tiny=True), device, tmp_path)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_lists_and_test_options(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / 'benchmarks'))
    for name in ('_common', 'gpu_check', 'bench_quality'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import _common
    import bench_quality
    import gpu_check

    assert _common.networks()['toysr'] == {'type': 'ToySR'}
    assert gpu_check.parse_args([]).models[-1] == 'toysr'
    assert bench_quality.base_arms()['toysr'] == {'type': 'ToySR'}
    with pytest.raises(SystemExit):  # ToySR declares no image-skip option
        bench_quality.parse_args(['--models', 'toysr+skip'])
    scripts = _load(REPO / 'scripts' / 'make_test_options.py', 'make_test_options_toy')
    spec = scripts.MODELS['ToySR_EDSR-baseline']
    assert (
        spec['protocol'] == 'liif'
        and spec['weights'] == 'experiments/ToySR_EDSR-baseline_DIV2K/models/net_g_latest.pth'
    )
    assert 'test_ToySR_EDSR-baseline_Set5.yml' in scripts.render_all()
