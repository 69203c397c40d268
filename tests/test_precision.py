"""Mixed precision and compilation in training (ArbitraryScaleSRModel ``train.amp`` / ``train.compile``).

CPU only here: bf16 autocast trains and resumes exactly; the fp16 gradient-scaler path is
exercised with a CPU ``GradScaler`` (the scaler logic is device-independent; fp16 autocast
itself needs CUDA and is refused on the CPU with one line).
"""

import copy

import pytest
import torch

from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.archs.precision import compile_arch
from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel

import train_helpers as th


def _model(tmp_path, **train) -> ArbitraryScaleSRModel:
    torch.manual_seed(0)
    opt = th.unit_model_opt(tmp_path, ema_decay=0, **train)
    opt['train']['scheduler']['milestones'] = [3]
    return ArbitraryScaleSRModel(opt)


def _batch(i: int) -> dict:
    g = torch.Generator().manual_seed(i)
    return {
        'lq': torch.rand(2, 3, 12, 12, generator=g),
        'gt': torch.rand(2, 64, 3, generator=g),
        'coord': torch.rand(2, 64, 2, generator=g) * 2 - 1,
        'cell': torch.full((2, 64, 2), 2 / 24),
    }


def _train(model, steps) -> list[float]:
    losses = []
    for i in steps:
        torch.manual_seed(100 + i)  # the Gumbel noise of step i, whichever model takes it
        model.feed_data(_batch(i))
        model.optimize_parameters(i)
        model.update_learning_rate(i)
        losses.append(model.get_current_log()['l_pix'])
    return losses


def test_bf16_trains_in_bf16_with_float32_loss(tmp_path):
    model = _model(tmp_path, amp='bf16')
    dtypes = []
    hook = model.net_g.decoder.mlp[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = copy.deepcopy(model.net_g.state_dict())
    losses = _train(model, range(1, 5))
    hook.remove()
    assert set(dtypes) == {torch.bfloat16}  # the decoder really ran in bf16
    assert model.output.dtype == torch.float32
    assert all(torch.isfinite(torch.tensor(v)) for v in losses)
    after = model.net_g.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # weights stay float32
    assert any(not torch.equal(after[k], v) for k, v in before.items())


def test_bf16_resume_is_exact(tmp_path):
    """Train 4 steps straight, or 2, save, resume in a new model, 2 more: identical weights."""
    straight = _model(tmp_path / 'a', amp='bf16')
    _train(straight, range(1, 5))

    first = _model(tmp_path / 'b', amp='bf16')
    _train(first, range(1, 3))
    (tmp_path / 'b').mkdir()
    first.save_network(first.net_g, 'net_g', 2)
    first.save_training_state(0, 2)
    state = torch.load(tmp_path / 'b' / '2.state', weights_only=False)
    resumed = _model(tmp_path / 'c', amp='bf16')
    resumed.load_network(resumed.net_g, str(tmp_path / 'b' / 'net_g_2.pth'), True, 'params')
    resumed.resume_training(state)
    _train(resumed, range(3, 5))
    for k, v in straight.net_g.state_dict().items():
        assert torch.equal(v, resumed.net_g.state_dict()[k]), k


def test_grad_scaler_state_saved_and_restored(tmp_path):
    """The fp16 path's scaler (here a CPU GradScaler, no autocast): steps, survives a resume."""
    model = _model(tmp_path)
    model.grad_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10, growth_interval=2)
    before = copy.deepcopy(model.net_g.state_dict())
    _train(model, range(1, 4))
    assert model.grad_scaler.get_scale() == 2.0**11  # grew once after 2 finite steps
    assert any(not torch.equal(model.net_g.state_dict()[k], v) for k, v in before.items())
    model.save_training_state(0, 3)
    state = torch.load(tmp_path / '3.state', weights_only=False)
    assert state['grad_scaler']['scale'] == 2.0**11
    other = _model(tmp_path)
    other.grad_scaler = torch.amp.GradScaler('cpu')
    other.resume_training(state)
    assert other.grad_scaler.get_scale() == 2.0**11


@pytest.mark.parametrize('amp, message', [('fp16', 'fp16 needs a CUDA device'), ('half', 'must be one of')])
def test_amp_option_errors_are_one_line(tmp_path, amp, message):
    with pytest.raises(ValueError, match=message) as err:
        _model(tmp_path, amp=amp)
    assert '\n' not in str(err.value) and 'train.amp' in str(err.value)


def test_compiled_arch_equals_eager():
    torch.manual_seed(0)
    eager = GaussianSR(**{**{k: v for k, v in th.TINY_NET.items() if k != 'type'}}).eval()
    compiled = compile_arch(copy.deepcopy(eager))
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged
    batch = _batch(0)
    with torch.no_grad():
        want = eager(batch['lq'], batch['coord'], batch['cell'])
        got = compiled(batch['lq'], batch['coord'], batch['cell'])
    assert (want - got).abs().max().item() <= 1e-5


def test_gaussian_field_stays_float32_under_autocast():
    """bf16 features in, float32 field out: equal to the float32 evaluation of the same values."""
    from gaussiansr_arch.archs.gaussian_field import evaluate_gaussian_table, gaussian_table

    g = torch.Generator().manual_seed(0)
    amp, sigma = torch.randn(1, 4, 6, 7, generator=g), 0.1 + 0.6 * torch.rand(1, 2, 6, 7, generator=g)
    rho, opacity = 0.9 * torch.rand(1, 1, 6, 7, generator=g) - 0.45, torch.rand(1, 1, 6, 7, generator=g)
    coord = torch.rand(1, 50, 2, generator=g) * 2 - 1
    half = [t.to(torch.bfloat16) for t in (amp, sigma, rho, opacity)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        table = gaussian_table(*half)
        field = evaluate_gaussian_table(table, coord)
    assert table.dtype == torch.float32 and field.dtype == torch.float32
    want = evaluate_gaussian_table(gaussian_table(*[t.float() for t in half]), coord)
    assert torch.equal(field, want)


def test_inference_precision_bf16_close_and_fp16_refused_on_cpu():
    from gaussiansr_arch.archs.precision import check_precision, upscale_in_precision

    torch.manual_seed(0)
    net = GaussianSR(**{k: v for k, v in th.TINY_NET.items() if k != 'type'}).eval()
    lq = torch.rand(1, 3, 9, 10)
    fp32 = upscale_in_precision(net, lq, 'fp32', scale=2.5)
    bf16 = upscale_in_precision(net, lq, 'bf16', scale=2.5)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert 0 < (bf16 - fp32).abs().max().item() < 0.05  # really ran in bf16, and stayed close
    with pytest.raises(ValueError, match='fp16 needs a CUDA device') as err:
        check_precision('fp16', 'cpu')
    assert '\n' not in str(err.value)
    with pytest.raises(ValueError, match='precision must be one of'):
        check_precision('int8', 'cpu')


def test_liif_coordinates_stay_float32_for_half_features():
    """bf16 features must not quantise LIIF's LR-pixel coordinates (they were: -5.5 dB at x2 in bf16)."""
    from gaussiansr_arch.archs.liif_arch import feature_coord_map

    feat = torch.zeros(1, 4, 120, 97)
    want = feature_coord_map(feat)
    got = feature_coord_map(feat.to(torch.bfloat16))
    assert got.dtype == torch.float32 and torch.equal(got, want)
