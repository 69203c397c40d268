"""The layer table of docs/architecture.md: lower layers never import higher ones (read with ast)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'gaussiansr_arch'
# Layer folder -> the package modules its files must not import.
FORBIDDEN = {
    'utils': ('gaussiansr_arch.archs', 'gaussiansr_arch.data', 'gaussiansr_arch.models', 'gaussiansr_arch.tools'),
    'archs': ('gaussiansr_arch.data', 'gaussiansr_arch.models', 'gaussiansr_arch.tools'),
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports (``import a.b``, ``from a.b import c`` -> a.b and a.b.c)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f'{node.module}.{alias.name}' for alias in node.names)
    return found


@pytest.mark.parametrize('layer', list(FORBIDDEN))
def test_lower_layers_never_import_higher(layer):
    wrong = {
        f'{path.name}: {module}'
        for path in sorted((PACKAGE / layer).glob('*.py'))
        for module in imported_modules(path)
        if module == 'gaussiansr_arch' or module.startswith(FORBIDDEN[layer])
    }
    assert not wrong, sorted(wrong)
