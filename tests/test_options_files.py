"""Option files: options/test/*.yml are exactly what scripts/make_test_options.py writes, they load
(BasicSR's option parsing, the datasets on a tiny tree of the documented layouts, the networks),
and every options/...yml path the README and docs name exists."""

import importlib.util
import itertools
import math
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.options import parse_options
from basicsr.utils.registry import MODEL_REGISTRY

from gaussiansr_arch.data.arbitrary_scale_dataset import ArbitraryScalePairedDataset, make_lr
from gaussiansr_arch.tools import prepare_benchmark
from gaussiansr_arch.utils.option_checks import options_file_error

REPO = Path(__file__).resolve().parents[1]
TEST_OPTIONS = REPO / 'options' / 'test'


def _load_script():
    spec = importlib.util.spec_from_file_location('make_test_options', REPO / 'scripts' / 'make_test_options.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MTO = _load_script()
COMMITTED = sorted(TEST_OPTIONS.glob('test_*.yml'))


def test_committed_test_options_are_the_generated_ones():
    files = MTO.render_all()
    assert len(files) == len(MTO.MODELS) * len(MTO.DATASETS) == 28
    assert {p.name for p in COMMITTED} == set(files), 'run python scripts/make_test_options.py'
    for path in COMMITTED:
        assert path.read_bytes() == files[path.name].encode(), f'{path.name}: run python scripts/make_test_options.py'
    assert MTO.render_all() == files  # deterministic
    assert MTO.main(['--check']) == 0


def test_check_lists_differing_missing_and_stale_files(tmp_path, capsys):
    assert MTO.main(['--out', str(tmp_path)]) == 0
    assert MTO.main(['--check', '--out', str(tmp_path)]) == 0
    (tmp_path / 'test_LIIF_EDSR-baseline_Set5.yml').write_text('name: edited\n')
    (tmp_path / 'test_LIIF_EDSR-baseline_General100.yml').unlink()
    (tmp_path / 'test_old.yml').write_text('name: old\n')
    capsys.readouterr()
    assert MTO.main(['--check', '--out', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f'differs: {tmp_path / "test_LIIF_EDSR-baseline_Set5.yml"}' in out
    assert f'missing: {tmp_path / "test_LIIF_EDSR-baseline_General100.yml"}' in out
    assert f'not generated (stale?): {tmp_path / "test_old.yml"}' in out
    assert out.count('\n') == 4  # the three problems and the hint


@pytest.mark.parametrize('path', COMMITTED, ids=lambda p: p.stem)
def test_test_options_protocol(path):
    """Shipped LR at x2/x3/x4; otherwise lr_degradation: matlab below x6, pil from x6 (LIIF's protocol)."""
    text = path.read_text()
    assert '\n# matlab for x1.5, x2.4, x3.6 (' in text and '\n# pil for x6, x8, x12, x18, x24, x30 (' in text
    opt = yaml.safe_load(text)
    assert [d['scale'] for d in opt['datasets'].values()] == MTO.SCALES
    for entry in opt['datasets'].values():
        s, crop = entry['scale'], math.ceil(entry['scale'])
        if s in (2, 3, 4):
            assert entry['filename_tmpl'] == f'{{}}x{s}' and entry['dataroot_lq'].endswith(f'/X{s}')
            assert 'lr_degradation' not in entry
        else:
            assert 'dataroot_lq' not in entry and entry['lr_degradation'] == ('pil' if s >= 6 else 'matlab')
        rgb = entry['name'].startswith('DIV2K-val')
        assert entry['metrics']['psnr']['crop_border'] == crop + 6 * rgb
        assert entry['metrics']['psnr']['test_y_channel'] is not rgb
        assert ('ssim' in entry['metrics']) is not rgb


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


@pytest.fixture
def data_tree(tmp_path):
    """datasets/ as documented: benchmark sets with HR only (LR by gaussiansr-prepare-benchmark), DIV2K-val."""
    hr = np.random.default_rng(0).integers(0, 256, (64, 70, 3), dtype=np.uint8)
    bench = tmp_path / 'datasets' / 'benchmark'
    for name in MTO.BENCHMARKS:
        _write(bench / name / 'HR' / 'img.png', hr)
    assert prepare_benchmark.main(['--root', str(bench), '--scales', '2', '3', '4', '--workers', '1']) == 0
    div2k = tmp_path / 'datasets' / 'DIV2K'
    _write(div2k / 'DIV2K_valid_HR' / '0801.png', hr)
    for s in (2, 3, 4):
        lr = make_lr(hr[: 64 // s * s, : 70 // s * s].astype(np.float32) / 255, (64 // s, 70 // s))
        _write(div2k / 'DIV2K_valid_LR_bicubic' / f'X{s}' / f'0801x{s}.png', np.round(lr * 255).astype(np.uint8))
    return tmp_path


def test_test_options_load(data_tree, monkeypatch):
    monkeypatch.chdir(data_tree)
    networks = {}
    for path in COMMITTED:
        assert options_file_error(str(path), 'test') is None
        monkeypatch.setattr(sys, 'argv', ['gaussiansr-test', '-opt', str(path)])
        opt, _ = parse_options(str(data_tree), is_train=False)
        assert MODEL_REGISTRY.get(opt['model_type'])
        networks[repr(opt['network_g'])] = opt['network_g']
        for phase, entry in opt['datasets'].items():
            assert phase.startswith('test_') and entry['phase'] == 'test'
            if 'lr_degradation' not in ArbitraryScalePairedDataset.OPTION_KEYS:  # dataset option not landed yet
                entry = {k: v for k, v in entry.items() if k != 'lr_degradation'}
            ds = build_dataset(entry)
            assert len(ds) == 1, entry['name']
            s = entry['scale']
            item = ds[0]
            assert item['lq'].shape[1:] == (math.floor(64 / s + 1e-9), math.floor(70 / s + 1e-9)), entry['name']
    assert len(networks) == len(MTO.MODELS)
    for net_opt in networks.values():
        build_network(net_opt)


# Where the README's shell loops take ``${m}`` from: ``for m in GaussianSR LIIF; do ... test_${m}_...``.
DOC_VARIABLES = {'m': ('GaussianSR', 'LIIF')}
# options/... paths in prose, `backticks` or code blocks; {a,b} braces, ${var} and * globs included.
OPTION_PATH = re.compile(r'(?<![\w/.-])options/(?:[\w.*/-]|\{[\w.,-]+\}|\$\{\w+\})+?\.ya?ml\b')


def _expand(path: str) -> list:
    """Shell-expand ``${var}`` (DOC_VARIABLES) and ``{a,b}`` of one path; ``*`` is left to glob."""
    parts = re.split(r'(\$\{\w+\}|\{[\w.,-]+\})', path)
    choices = [
        DOC_VARIABLES[p[2:-1]] if p.startswith('${') else p[1:-1].split(',') if p.startswith('{') else [p]
        for p in parts
    ]
    return [''.join(c) for c in itertools.product(*choices)]


def test_expand_and_regex():
    text = (
        '`options/train/train_GaussianSR_{RDN,SwinIR}_DIV2K.yml`; see options/test/x.yml.\n'
        '    for m in A B; do gaussiansr-test -opt options/test/test_${m}_E.yml; done  # not my/options/a.yml'
    )
    found = OPTION_PATH.findall(text)
    assert found == [
        'options/train/train_GaussianSR_{RDN,SwinIR}_DIV2K.yml',
        'options/test/x.yml',
        'options/test/test_${m}_E.yml',
    ]
    assert _expand(found[0]) == [
        'options/train/train_GaussianSR_RDN_DIV2K.yml',
        'options/train/train_GaussianSR_SwinIR_DIV2K.yml',
    ]
    assert _expand(found[2]) == ['options/test/test_GaussianSR_E.yml', 'options/test/test_LIIF_E.yml']


def test_option_paths_in_docs_exist():
    named, missing = 0, []
    for doc in [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]:
        for lineno, line in enumerate(doc.read_text().splitlines(), 1):
            for raw in OPTION_PATH.findall(line):
                unknown = [v for v in re.findall(r'\$\{(\w+)\}', raw) if v not in DOC_VARIABLES]
                assert not unknown, f'{doc.name}:{lineno}: add {unknown} to DOC_VARIABLES'
                for path in _expand(raw):
                    named += 1
                    if not (sorted(REPO.glob(path)) if '*' in path else (REPO / path).is_file()):
                        missing.append(f'{doc.relative_to(REPO)}:{lineno}: {path}')
    assert named > 5
    assert not missing, 'named but missing:\n' + '\n'.join(missing)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's load_model example, as written, on a tiny GaussianSR saved as .safetensors."""
    import re

    import numpy as np
    from PIL import Image

    from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
    from gaussiansr_arch.utils.weights import save_weights

    from train_helpers import TINY_NET

    code = re.search(r'```python\n(.*?)```', (REPO / 'README.md').read_text(), re.S).group(1)
    network = {**TINY_NET, 'num_freq': 8}
    arch = GaussianSR(**{k: v for k, v in network.items() if k != 'type'})
    monkeypatch.chdir(tmp_path)
    save_weights('gaussiansr_edsr.safetensors', arch.state_dict(), network)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save('photo.png')
    assert 'size=(1080, 1920)' in code
    code = code.replace('size=(1080, 1920)', 'size=(108, 192)')  # the same calls, a tenth of the size
    exec(compile(code, 'README.md', 'exec'), {})
    assert Image.open('photo_sr.png').size == (192, 108)
