"""Docs that restate facts kept elsewhere agree with them: the console scripts of docs/install.md
are setup.py's CONSOLE_SCRIPTS."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_console_scripts() -> list:
    """The command names of setup.py's CONSOLE_SCRIPTS, read without running setup.py."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'CONSOLE_SCRIPTS' for t in node.targets):
            return [entry.split('=')[0].strip() for entry in ast.literal_eval(node.value)]
    raise AssertionError('setup.py has no CONSOLE_SCRIPTS list')


def install_md_console_scripts() -> list:
    """The `gaussiansr-*` names in docs/install.md's sentence 'its console scripts (...)'."""
    text = ' '.join((REPO / 'docs' / 'install.md').read_text().split())
    match = re.search(r'its console scripts \((.*?)\), pytest', text)
    assert match, "docs/install.md: no 'its console scripts (...), pytest' sentence"
    return re.findall(r'`(gaussiansr-[\w-]+)`', match.group(1))


def test_install_md_lists_every_console_script_of_setup_py():
    scripts = setup_console_scripts()
    assert len(scripts) >= 16 and len(set(scripts)) == len(scripts)
    assert all(s.startswith('gaussiansr-') for s in scripts), scripts
    listed = install_md_console_scripts()
    assert sorted(listed) == sorted(scripts), (
        f'missing in docs/install.md: {sorted(set(scripts) - set(listed))}; '
        f'not in setup.py: {sorted(set(listed) - set(scripts))}'
    )
    assert len(set(listed)) == len(listed)


def test_readme_bank_initialisation_row_is_the_code():
    """The README's deviation row on the bank's initial sigmas gives what GaussianBank() starts from."""
    import torch

    from gaussiansr_arch.archs.selective_splatting import GaussianBank

    rows = [line for line in (REPO / 'README.md').read_text().splitlines() if 'linspace(0.2, 3.0, 10)' in line]
    assert len(rows) == 1, rows
    ours = rows[0].split(' | ')[-1]
    quoted = [float(v) for v in re.search(r'\*\*([\d., ]+)\*\*', ours).group(1).split(',')]
    kernels = GaussianBank().kernels().detach()  # [100, 4]: sigma_y, sigma_x, rho, opacity
    for column in (0, 1):
        values = sorted({round(v, 4) for v in kernels[:, column].tolist()})
        assert values == quoted, (column, values)
    assert kernels[:, 2].abs().max() == 0
    opacity = float(re.search(r'opacity sigmoid\(1\) = ([\d.]+)', ours).group(1))
    assert torch.allclose(kernels[:, 3], torch.full((100,), opacity), atol=5e-5)


def _onnx_table() -> dict:
    """docs/tools.md's ONNX table: model (first word(s) before the size) -> the bold max |diff|."""
    rows = {}
    for line in (REPO / 'docs' / 'tools.md').read_text().splitlines():
        m = re.match(r'\| (GaussianSR, \w+ decoder|LIIF|MetaSR|ContinuousSR)\b.*?\| \*\*(\d\.\de-\d+)\*\*', line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_one_onnx_figure_per_arch_everywhere():
    table = _onnx_table()
    assert set(table) == {'GaussianSR, LTE decoder', 'GaussianSR, MLP decoder', 'LIIF', 'MetaSR', 'ContinuousSR'}
    readme = ' '.join((REPO / 'README.md').read_text().split())
    sentence = re.search(r'Each export is compared with PyTorch through onnxruntime.*?\.\s', readme).group(0)
    quoted = set(re.findall(r'\d\.\de-\d+', sentence))
    assert quoted == set(table.values()), (quoted, table)
    continuoussr = ' '.join((REPO / 'docs' / 'continuoussr.md').read_text().split())
    onnx = re.search(r'- ONNX: .*?\.\s- ', continuoussr).group(0)
    assert set(re.findall(r'\d\.\de-\d+', onnx)) == {table['ContinuousSR']}
