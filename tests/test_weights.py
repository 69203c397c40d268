"""The one weights path (gaussiansr_arch.utils.weights): reading, picking, building, one mismatch report.

Shared by the tools (load_model, the LIIF converter) and the train/test entries (check_network_file).
"""

import argparse
import copy
import re

import cv2
import numpy as np
import pytest
import torch

from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.utils import weights as W
from gaussiansr_arch.utils.entry_errors import CheckpointError, check_network_file

from conftest import TINY_GAUSSIANSR_OPT


def _tiny(**changes) -> GaussianSR:
    opt = {k: v for k, v in {**TINY_GAUSSIANSR_OPT, **changes}.items() if k != 'type'}
    return GaussianSR(**copy.deepcopy(opt))


@pytest.fixture
def files(tmp_path):
    """Weight files of every kind a user may hand over."""
    net = _tiny()
    sd = net.state_dict()
    good = tmp_path / 'good.pth'
    torch.save({'params': sd, 'params_ema': {k: v + 1 for k, v in sd.items()}, 'network_g': TINY_GAUSSIANSR_OPT}, good)
    blob = good.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(blob[: len(blob) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'notes.pth').write_bytes(b'not a checkpoint\n')
    torch.save({'params': sd, 'args': argparse.Namespace(lr=1)}, tmp_path / 'pickled.pth')
    torch.save({f'module.{k}': v for k, v in sd.items()}, tmp_path / 'bare.pth')
    return {'dir': tmp_path, 'net': net, 'sd': sd}


# ---------------------------------------------------------------------------- reading
@pytest.mark.parametrize(
    'name, message',
    [
        ('missing.pth', 'weights file {} does not exist'),
        ('.', 'weights file {} is not a file'),
        (
            'empty.pth',
            'weights file {} cannot be loaded (truncated or not a PyTorch checkpoint): file is empty (0 bytes)',
        ),
        ('cut.pth', 'weights file {} cannot be loaded (truncated or not a PyTorch checkpoint): PytorchStreamReader'),
        ('notes.pth', 'weights file {} cannot be loaded (truncated or not a PyTorch checkpoint): '),
    ],
)
def test_read_weights_errors_are_one_line_naming_the_file(files, name, message):
    path = files['dir'] / name if name != '.' else files['dir']
    with pytest.raises(W.WeightsError) as err:
        W.read_weights(str(path))
    assert str(err.value).startswith(message.format(path)) and '\n' not in str(err.value), err.value
    assert not isinstance(err.value, W.WeightsNeedPickleError)


def test_read_weights_refuses_pickled_objects(files):
    path = files['dir'] / 'pickled.pth'
    with pytest.raises(
        W.WeightsNeedPickleError,
        match=rf'network file {path} needs pickle to load: '
        r'argparse.Namespace is not allowed with weights_only=True$',
    ):
        W.read_weights(str(path), 'network file')


# ---------------------------------------------------------------------------- picking
def test_pick_state_dict_layouts(files):
    ckpt = W.read_weights(str(files['dir'] / 'good.pth'))
    ema = W.pick_state_dict(ckpt, 'good.pth')
    assert torch.equal(ema['encoder.conv_first.weight'], files['sd']['encoder.conv_first.weight'] + 1)  # params_ema
    params = W.pick_state_dict(ckpt, 'good.pth', 'params')
    assert torch.equal(params['encoder.conv_first.weight'], files['sd']['encoder.conv_first.weight'])
    bare = W.pick_state_dict(W.read_weights(str(files['dir'] / 'bare.pth')), 'bare.pth')
    assert set(bare) == set(files['sd'])  # the DataParallel prefix is stripped
    assert W.recorded_network_opt(ckpt) == TINY_GAUSSIANSR_OPT and W.recorded_network_opt(bare) is None
    with pytest.raises(
        W.WeightsError,
        match=r"^weights file good.pth has no 'params_x' entry "
        r"\(entries: \['network_g', 'params', 'params_ema'\]\)$",
    ):
        W.pick_state_dict(ckpt, 'good.pth', 'params_x')
    with pytest.raises(W.WeightsError, match='^weights file x.pth: no params_ema/params entry and not a state dict$'):
        W.pick_state_dict({'epoch': 3}, 'x.pth')
    with pytest.raises(W.WeightsError, match='^weights file x.pth: the parameters are not a dict of tensors$'):
        W.pick_state_dict({'params': {'w': 1.0}}, 'x.pth')


# ---------------------------------------------------------------------------- building
def test_build_arch_through_basicsr_and_its_errors():
    from basicsr.utils import logger as basicsr_logger

    fresh = 'basicsr' not in basicsr_logger.initialized_logger
    net = W.build_arch(TINY_GAUSSIANSR_OPT, 'options file run.yml')
    assert isinstance(net, GaussianSR)
    if fresh:  # building does not set up BasicSR's logger behind a later training run's back
        assert 'basicsr' not in basicsr_logger.initialized_logger
    with pytest.raises(
        W.WeightsError, match="^options file run.yml: network_g type 'NoSuchArch' is not a registered arch$"
    ):
        W.build_arch({'type': 'NoSuchArch'}, 'options file run.yml')
    with pytest.raises(
        W.WeightsError,
        match=r'^options file run.yml: cannot build GaussianSR from network_g \(.*'
        r"'no_such_option'",
    ):
        W.build_arch(dict(TINY_GAUSSIANSR_OPT, no_such_option=1), 'options file run.yml')
    with pytest.raises(W.WeightsError, match='network_g must be a mapping with a "type" key'):
        W.build_arch({'num_feat': 3}, 'options file run.yml')


# ---------------------------------------------------------------------------- the one mismatch report
def test_one_mismatch_report(files):
    other = dict(_tiny(decoder='mlp').state_dict(), **{'extra.weight': torch.zeros(1)})
    with pytest.raises(W.WeightsError) as err:
        W.check_fits(files['net'], other, 'weights file a.pth', 'options file b.yml')
    message = str(err.value)
    assert message.startswith(
        'weights file a.pth does not fit GaussianSR of options file b.yml (another arch or '
        'config?): missing keys 5 (decoder.coef.bias, '
    )
    assert (
        message.endswith(
            '; unexpected keys 1 (extra.weight); shape mismatch 1 (decoder.mlp.0.weight (32, 20) vs (32, 256))'
        )
        and '\n' not in message
    )
    # non-strict loading only fails on shapes (load_state_dict rejects those even with strict=False)
    assert (
        W.mismatch(files['net'], {'encoder.conv_first.weight': files['sd']['encoder.conv_first.weight']}, strict=False)
        == []
    )
    assert W.short_keys(list('abcdefg')) == '7 (a, b, c, d, e, ...)' and W.short_keys(['a']) == '1 (a)'
    net = W.load_into(_tiny(), files['sd'], 'weights file a.pth')
    assert torch.equal(net.encoder.conv_first.weight, files['sd']['encoder.conv_first.weight'])


def test_check_network_file_uses_the_same_reading_and_report(files, monkeypatch):
    d = files['dir']
    check_network_file(files['net'], str(d / 'good.pth'), param_key='params_ema')  # fits: no error
    check_network_file(files['net'], str(d / 'bare.pth'), param_key=None)  # the whole file, as BasicSR
    # pickled objects: refused in one line where BasicSR's torch.load refuses them too (torch >= 2.6) ...
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    monkeypatch.setattr(torch, '__version__', '2.6.0')
    with pytest.raises(
        CheckpointError,
        match=rf'^network file {d / "pickled.pth"} needs pickle to load: '
        r'argparse.Namespace is not allowed with weights_only=True; save ',
    ):
        check_network_file(files['net'], str(d / 'pickled.pth'))
    # ... else BasicSR's own loader decides
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    check_network_file(files['net'], str(d / 'pickled.pth'))
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    monkeypatch.setattr(torch, '__version__', '2.5.1')
    check_network_file(files['net'], str(d / 'pickled.pth'))
    for name, expected in (
        ('missing.pth', 'does not exist'),
        ('notes.pth', 'cannot be loaded (truncated or not a PyTorch checkpoint)'),
    ):
        with pytest.raises(CheckpointError, match=rf'^network file {d / name} {re.escape(expected)}'):
            check_network_file(files['net'], str(d / name))
    with pytest.raises(
        CheckpointError,
        match=rf'^network file {d / "good.pth"} does not fit GaussianSR of the options '
        r'\(another arch or config\?\): unexpected keys 5 \(decoder.coef.bias, ',
    ):
        check_network_file(_tiny(decoder='mlp'), str(d / 'good.pth'))


def test_tools_report_unusable_weights_in_one_line(files, tmp_path, capsys):
    from gaussiansr_arch.tools import upscale

    img = tmp_path / 'img.png'
    cv2.imwrite(str(img), np.zeros((6, 6, 3), np.uint8))
    for name, expected in (('pickled.pth', 'needs pickle to load'), ('empty.pth', 'file is empty (0 bytes)')):
        with pytest.raises(SystemExit) as exc:
            upscale.run([str(img), '--scale', '2', '--weights', str(files['dir'] / name), '-o', str(tmp_path / 'o')])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f'error: weights file {files["dir"] / name} ') and expected in err[0]
    assert not (tmp_path / 'o').exists()
