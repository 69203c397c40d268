"""Deployable weights: .pth <-> .safetensors (utils.weights, gaussiansr-convert-weights), one-call
``gaussiansr_arch.load_model`` (recorded network_g or shape detection), and training writing and
loading .safetensors. Tiny models only.
"""

import argparse
import copy
import json
import os

import pytest
import torch
from safetensors import safe_open

import gaussiansr_arch
from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel
from gaussiansr_arch.tools import convert_weights
from gaussiansr_arch.utils import weights as W
from gaussiansr_arch.utils.arch_detect import UnknownLayoutError, detect_network_opt
from gaussiansr_arch.utils.entry_errors import CheckpointError, check_network_file
from gaussiansr_arch.utils.methods import get_method

import train_helpers as th

TINY_LIIF = get_method('LIIF').network(tiny=True)
# What shape detection sees exactly: splat_channels 0 or the default 8, image_skip 'none'.
DETECTABLE = {
    'gaussiansr-lte': {**th.TINY_NET, 'splat_channels': 8, 'num_freq': 32},
    'gaussiansr-mlp-splat0': {**th.TINY_NET, 'splat_channels': 0, 'decoder': 'mlp'},
    'liif': TINY_LIIF,
    'liif-no-unfold': {**TINY_LIIF, 'feat_unfold': False, 'cell_decode': False},
    'metasr': {
        'type': 'MetaSR',
        'encoder': 'edsr-baseline',
        'encoder_opt': {'num_feat': 8, 'num_block': 1},
        'hidden': [16],
    },
}


def _build(opt: dict) -> torch.nn.Module:
    return W.build_arch(copy.deepcopy(opt), 'test').eval()


def _build_with(sd, opt=TINY_LIIF) -> torch.nn.Module:
    net = _build(opt)
    net.load_state_dict(sd)
    return net


def _render(net: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    lq = torch.rand(1, 3, 9, 11, generator=gen)
    with torch.no_grad():
        return net.upscale(lq, size=(21, 26))  # a non-integer scale


def _one_line(message: str, path) -> None:
    assert '\n' not in message and str(path) in message, message


def _assert_same_tensors(a, b) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def _training_file(tmp_path, opt: dict, name: str = 'net_g_5.pth') -> tuple:
    """A BasicSR training checkpoint {'params', 'params_ema', 'network_g'} and its two parameter sets."""
    params = _build(opt).state_dict()
    ema = {k: v + 0.25 if v.is_floating_point() else v for k, v in params.items()}
    path = tmp_path / name
    torch.save({'params': params, 'params_ema': ema, 'network_g': opt}, path)
    return path, params, ema


# ---------------------------------------------------------------------------- conversion
@pytest.mark.parametrize('opt', [th.TINY_NET, TINY_LIIF], ids=['gaussiansr', 'liif'])
def test_pth_to_safetensors_to_pth_is_bit_exact(tmp_path, opt, capsys):
    src, params, ema = _training_file(tmp_path, opt)
    st, back = tmp_path / 'w.safetensors', tmp_path / 'back.pth'
    out = convert_weights.run([str(src), str(st)])
    assert out['param_key'] == 'params_ema' and out['warning'] is None  # params_ema picked, network_g recorded
    assert capsys.readouterr().out.startswith(f'wrote {st}: {len(ema)} tensors (params_ema), {opt["type"]}')
    with safe_open(str(st), framework='pt') as f:
        meta = f.metadata()
    assert meta['param_key'] == 'params_ema' and json.loads(meta['network_g']) == opt
    assert meta['gaussiansr_arch_version'] == gaussiansr_arch.__version__

    convert_weights.main([str(st), str(back)])
    ckpt = torch.load(back, weights_only=True)
    assert set(ckpt) == {'params_ema', 'network_g', 'gaussiansr_arch_version'}
    _assert_same_tensors(ckpt['params_ema'], ema)
    assert ckpt['network_g'] == opt
    # both read the same through the one reader
    for path in (st, back):
        read = W.read_weights(str(path))
        _assert_same_tensors(W.pick_state_dict(read, str(path)), ema)
        assert W.recorded_network_opt(read) == opt

    convert_weights.run([str(src), str(tmp_path / 'p.safetensors'), '--param-key', 'params'])
    _assert_same_tensors(W.pick_state_dict(W.read_weights(str(tmp_path / 'p.safetensors')), 'p'), params)


def test_convert_records_network_g_from_opt_or_warns(tmp_path, capsys):
    sd = _build(th.TINY_NET).state_dict()
    bare = tmp_path / 'bare.pth'
    torch.save(sd, bare)
    out = convert_weights.run([str(bare), str(tmp_path / 'a.safetensors')])
    captured = capsys.readouterr()
    assert out['warning'] and out['param_key'] == 'params' and out['network_g'] is None
    assert captured.err.startswith(
        f'warning: {bare} records no network_g and no --opt was given: the tools and gaussiansr_arch.load_model '
        f'guess the arch of {tmp_path / "a.safetensors"} from its shapes'
    )
    assert W.recorded_network_opt(W.read_weights(str(tmp_path / 'a.safetensors'))) is None

    yml = th.write_yaml({'network_g': th.TINY_NET}, tmp_path / 'run.yml')
    out = convert_weights.run([str(bare), str(tmp_path / 'b.safetensors'), '--opt', yml])
    assert out['warning'] is None
    assert W.recorded_network_opt(W.read_weights(str(tmp_path / 'b.safetensors'))) == th.TINY_NET


@pytest.mark.parametrize('case', ['other-arch', 'exists', 'same-file', 'format', 'pickled', 'truncated'])
def test_convert_errors_are_one_line_and_write_nothing(tmp_path, capsys, case):
    src, _, _ = _training_file(tmp_path, th.TINY_NET)
    dst = tmp_path / 'out.safetensors'
    args = [str(src), str(dst)]
    if case == 'other-arch':
        args += ['--opt', th.write_yaml({'network_g': TINY_LIIF}, tmp_path / 'liif.yml')]
        expected = f'error: input weights file {src} does not fit LIIF of options file'
    elif case == 'exists':
        dst.write_bytes(b'keep')
        expected = f'error: output {dst} exists; pass --force to overwrite it'
    elif case == 'same-file':
        args = [str(src), str(src), '--force']
        expected = f'error: output {src} is the input file'
    elif case == 'format':
        args = [str(src), str(tmp_path / 'out.bin')]
        expected = f'error: output {tmp_path / "out.bin"}: unknown format'
    elif case == 'pickled':
        torch.save({'params': {}, 'args': argparse.Namespace(lr=1)}, src)
        expected = f'error: input weights file {src} needs pickle to load: argparse.Namespace is not allowed'
    else:
        W.save_weights(str(tmp_path / 'in.safetensors'), _build(th.TINY_NET).state_dict())
        blob = (tmp_path / 'in.safetensors').read_bytes()
        (tmp_path / 'in.safetensors').write_bytes(blob[: len(blob) // 2])
        args = [str(tmp_path / 'in.safetensors'), str(tmp_path / 'out.pth')]
        expected = (
            f'error: input weights file {tmp_path / "in.safetensors"} cannot be loaded (truncated or '
            'not a safetensors file): '
        )
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        convert_weights.run(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith(expected), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no temporary left
    if case == 'exists':
        assert dst.read_bytes() == b'keep'


# ---------------------------------------------------------------------------- saving
def test_save_weights_contiguous_cpu_and_shared_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    sd = {'t': base.t(), 'a': base, 'tied': base, 'row': base[1], 'half': torch.ones(2, dtype=torch.bfloat16)}
    for name in ('w.safetensors', 'w.pth'):
        W.save_weights(str(tmp_path / name), sd, {'type': 'GaussianSR', 'sigma_range': (0.1, 0.7)})
        read = W.read_weights(str(tmp_path / name))
        _assert_same_tensors(W.pick_state_dict(read, name), {k: v.contiguous() for k, v in sd.items()})
        assert read['network_g'] == {'type': 'GaussianSR', 'sigma_range': [0.1, 0.7]}  # JSON types in both
    plain = W.plain_tensors(sd)
    assert all(t.is_contiguous() for t in plain.values())
    assert plain['a'].data_ptr() == base.data_ptr() and plain['tied'].data_ptr() != base.data_ptr()
    assert plain['row'].untyped_storage().nbytes() == 16  # a view is saved alone, not with its base
    assert sorted(p.name for p in tmp_path.iterdir()) == ['w.pth', 'w.safetensors']
    with pytest.raises(W.WeightsError, match=r'^weights file w.bin: unknown format; name it .safetensors or .pth$'):
        W.save_weights('w.bin', sd)
    with pytest.raises(W.WeightsError, match='network_g cannot be recorded as JSON'):
        W.save_weights(str(tmp_path / 'x.pth'), sd, {'type': 'LIIF', 'bad': object()})
    assert not (tmp_path / 'x.pth').exists()


def test_foreign_safetensors_is_a_bare_state_dict(tmp_path):
    from safetensors.torch import save_file

    sd = _build(TINY_LIIF).state_dict()
    save_file(dict(sd), str(tmp_path / 'hub.safetensors'))  # no metadata, as other software writes
    read = W.read_weights(str(tmp_path / 'hub.safetensors'))
    assert W.is_state_dict(read) and W.recorded_network_opt(read) is None
    assert torch.equal(_render(gaussiansr_arch.load_model(str(tmp_path / 'hub.safetensors'))), _render(_build_with(sd)))


# ---------------------------------------------------------------------------- one-call loading
@pytest.mark.parametrize('name', list(DETECTABLE))
def test_load_model_equals_the_original_from_every_file(tmp_path, name):
    opt = DETECTABLE[name]
    net = _build(opt)
    expected = _render(net)
    sd = net.state_dict()
    W.save_weights(str(tmp_path / 'w.pth'), sd, opt, 'params_ema')
    W.save_weights(str(tmp_path / 'w.safetensors'), sd, opt)
    torch.save({f'module.{k}': v for k, v in sd.items()}, tmp_path / 'bare.pth')  # no network_g: shapes
    W.save_weights(str(tmp_path / 'bare.safetensors'), sd)
    assert detect_network_opt(sd)['type'] == opt['type']
    for file in ('w.pth', 'w.safetensors', 'bare.pth', 'bare.safetensors'):
        model = gaussiansr_arch.load_model(str(tmp_path / file))
        assert type(model) is type(net) and not model.training
        assert not any(p.requires_grad for p in model.parameters())
        assert torch.equal(_render(model), expected), file


def test_detection_of_the_other_encoders_and_what_it_cannot_see(tmp_path):
    rdn = {
        'type': 'GaussianSR',
        'encoder': 'rdn',
        'encoder_opt': {'num_feat': 8, 'num_block': 2, 'num_layer': 2, 'growth': 4},
        'splat_channels': 0,
        'decoder': 'mlp',
        'decoder_hidden': [16],
    }
    swinir = {
        'type': 'GaussianSR',
        'encoder': 'swinir',
        'encoder_opt': {'embed_dim': 12, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'img_size': 16},
        'bank_size': 4,
        'decoder_hidden': [16],
        'num_freq': 16,
    }
    for opt in (rdn, swinir):
        net = _build(opt)
        torch.save(net.state_dict(), tmp_path / 'bare.pth')
        assert torch.equal(_render(gaussiansr_arch.load_model(str(tmp_path / 'bare.pth'))), _render(net))
    # No parameter holds splat_channels (> 0) or image_skip: detection assumes 8 and 'none'.
    sd = _build({**th.TINY_NET, 'image_skip': 'bilinear'}).state_dict()
    detected = detect_network_opt(sd)
    assert detected['splat_channels'] == 8 and 'image_skip' not in detected
    assert detected['bank_size'] == th.TINY_NET['bank_size']
    assert detected['decoder_hidden'] == th.TINY_NET['decoder_hidden']


def test_load_model_errors_are_one_line(tmp_path):
    sd = _build(th.TINY_NET).state_dict()
    torch.save({'params': sd, 'args': argparse.Namespace(lr=1)}, tmp_path / 'pickled.pth')
    W.save_weights(str(tmp_path / 'w.safetensors'), sd, th.TINY_NET)
    blob = (tmp_path / 'w.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(blob[: len(blob) - 100])
    (tmp_path / 'pth.safetensors').write_bytes((tmp_path / 'pickled.pth').read_bytes())
    torch.save({'conv.weight': torch.zeros(3, 3)}, tmp_path / 'other.pth')
    torch.save({k: v for k, v in sd.items() if k.startswith('encoder.')}, tmp_path / 'encoder.pth')
    cases = {
        'pickled.pth': (W.WeightsNeedPickleError, 'needs pickle to load: argparse.Namespace is not allowed'),
        'cut.safetensors': (W.WeightsError, 'cannot be loaded (truncated or not a safetensors file): '),
        'pth.safetensors': (W.WeightsError, 'cannot be loaded (truncated or not a safetensors file): '),
        'other.pth': (UnknownLayoutError, 'unknown layout (no encoder.* parameters; keys: conv.weight)'),
        'encoder.pth': (UnknownLayoutError, 'unknown layout (encoder.* only'),
    }
    for name, (kind, expected) in cases.items():
        path = tmp_path / name
        with pytest.raises(kind) as err:
            gaussiansr_arch.load_model(str(path))
        assert str(err.value).startswith(f'weights file {path}') and expected in str(err.value), err.value
        _one_line(str(err.value), path)
    # the training check names the truncated file in one line too
    with pytest.raises(CheckpointError, match=r'^network file .*cut\.safetensors cannot be loaded \(truncated'):
        check_network_file(_build(th.TINY_NET), str(tmp_path / 'cut.safetensors'))


# ---------------------------------------------------------------------------- training
def test_save_network_writes_safetensors_and_pretrain_loads_it(tmp_path):
    opt = th.unit_model_opt(tmp_path / 'a', ema_decay=0)  # EMA off: the file holds params
    opt['logger'] = {'save_safetensors': True}
    model = ArbitraryScaleSRModel(opt)
    model.save(0, 4)
    pth = W.read_weights(str(tmp_path / 'a' / 'net_g_4.pth'))
    st = W.read_weights(str(tmp_path / 'a' / 'net_g_4.safetensors'))
    assert set(st) == {'params', 'network_g', 'gaussiansr_arch_version'} and st['network_g'] == th.TINY_NET
    _assert_same_tensors(st['params'], pth['params'])

    # pretrain_network_g: a .safetensors holds one set, loaded into net_g and net_g_ema whatever the key
    opt = th.unit_model_opt(tmp_path / 'b')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'a' / 'net_g_4.safetensors')
    model = ArbitraryScaleSRModel(opt)
    _assert_same_tensors(model.net_g.state_dict(), pth['params'])
    _assert_same_tensors(model.net_g_ema.state_dict(), pth['params'])

    blob = (tmp_path / 'a' / 'net_g_4.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(blob[:100])
    opt['path']['pretrain_network_g'] = str(tmp_path / 'cut.safetensors')
    with pytest.raises(CheckpointError) as err:
        ArbitraryScaleSRModel(opt)
    assert str(err.value).startswith(
        f'network file {tmp_path / "cut.safetensors"} cannot be loaded (truncated or not a safetensors file)'
    )
    _one_line(str(err.value), tmp_path / 'cut.safetensors')

    # a .pth that needs pickle: one line too (this torch's torch.load, BasicSR's, refuses it as well)
    torch.save({'params': pth['params'], 'args': argparse.Namespace(lr=1)}, tmp_path / 'pickled.pth')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'pickled.pth')
    with pytest.raises(CheckpointError) as err:
        ArbitraryScaleSRModel(opt)
    assert 'needs pickle to load: argparse.Namespace is not allowed' in str(err.value)
    _one_line(str(err.value), tmp_path / 'pickled.pth')


def test_training_with_save_safetensors_writes_loadable_weights(tmp_path):
    data = th.make_tiny_data(tmp_path / 'data')
    opt = th.train_opt(data, 'st', total_iter=2, ckpt_freq=2, val_freq=100)
    opt['logger']['save_safetensors'] = True
    del opt['datasets']['val_x2'], opt['val']  # no validation: only the weights files matter here
    yml = th.write_yaml(opt, tmp_path / 'train.yml')
    th.run_entry('train', '-opt', yml, '--root', str(tmp_path))
    models = tmp_path / 'experiments' / 'st' / 'models'
    assert sorted(p.name for p in models.iterdir()) == [
        'net_g_2.pth',
        'net_g_2.safetensors',
        'net_g_latest.pth',
        'net_g_latest.safetensors',
    ]
    pth = W.read_weights(str(models / 'net_g_2.pth'))
    st = W.read_weights(str(models / 'net_g_2.safetensors'))
    assert set(st) == {'params_ema', 'network_g', 'gaussiansr_arch_version'}  # EMA on: params_ema
    assert st['network_g'] == th.TINY_NET
    _assert_same_tensors(st['params_ema'], pth['params_ema'])
    model = gaussiansr_arch.load_model(str(models / 'net_g_2.safetensors'))
    reference = _build_with(pth['params_ema'], th.TINY_NET)
    assert torch.equal(_render(model), _render(reference))


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_saved_weights_get_the_default_file_mode(tmp_path, suffix):
    # safetensors' save_file recreates the file with mode 0600; users expect what open() gives.
    path = tmp_path / f'w{suffix}'
    W.save_weights(str(path), {'w': torch.zeros(2)})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
