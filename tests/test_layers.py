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


# ---------------------------------------------------------------------------- the tools' one exit path
def console_scripts() -> dict[str, str]:
    """setup.py's CONSOLE_SCRIPTS, read with ast: {command: 'module:function'}."""
    tree = ast.parse((PACKAGE.parent / 'setup.py').read_text(encoding='utf-8'))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'CONSOLE_SCRIPTS' for t in node.targets):
            entries = ast.literal_eval(node.value)
            return {name.strip(): target.strip() for name, target in (e.split('=') for e in entries)}
    raise AssertionError('no CONSOLE_SCRIPTS in setup.py')


# Entries around BasicSR's pipelines: their one-line error path is gaussiansr_arch.entry.basicsr_entry.
BASICSR_ENTRIES = {'gaussiansr-train', 'gaussiansr-test'}
# The demo runs the tools (each through run_tool) and reports a bad --iters as one line itself.
OWN_MAIN = {'gaussiansr-demo'}


@pytest.mark.parametrize('command', sorted(console_scripts()))
def test_every_console_script_goes_through_the_one_runner(command):
    """Every gaussiansr-* tool is ``Tool(build_parser, body).main``: run_tool's one-line errors
    (exit 2) and Ctrl-C (exit 130); the train/test entries go through basicsr_entry."""
    import importlib

    from gaussiansr_arch.tools.common import Tool

    module_name, func_name = console_scripts()[command].split(':')
    module = importlib.import_module(module_name)
    main = getattr(module, func_name)
    if command in BASICSR_ENTRIES:
        assert 'basicsr_entry' in imported_names(Path(module.__file__)), command
    elif command not in OWN_MAIN:
        tool = getattr(main, '__self__', None)
        assert isinstance(tool, Tool) and main == tool.main, f'{command}: main is not a Tool entry point'
        assert tool.build_parser is module.build_parser, f'{command}: build_parser is not the module one'
        assert tool.build_parser().prog == command or command.endswith(tool.build_parser().prog), command


def imported_names(path: Path) -> set[str]:
    """Every name a file imports with ``from x import name``."""
    return {
        alias.name
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


@pytest.mark.parametrize('module_name', ['upscale', 'onnx_render', 'kernel_bank', 'compare'])
def test_output_of_every_image_writing_tool_is_a_folder(module_name):
    """``-o`` means the output folder for every tool that writes images."""
    import importlib

    parser = importlib.import_module(f'gaussiansr_arch.tools.{module_name}').build_parser()
    (action,) = [a for a in parser._actions if '-o' in a.option_strings]
    assert action.help.startswith('output folder'), (module_name, action.help)


# tools/ modules that still import another tools/ module besides common.py (the rest of issue 22
# item 2: what they share moves to toolkit/ or they become one tool). Shrink it; never grow it.


def test_no_tool_module_imports_another_and_toolkit_imports_no_tool():
    """tools/ holds command lines: a tool imports tools/common.py (CLI helpers) and the library, never
    another tool; toolkit/ (the library the tools share) imports nothing from tools/."""
    found = set()
    for path in sorted((PACKAGE / 'tools').glob('*.py')):
        for module in imported_modules(path):
            if not module.startswith('gaussiansr_arch.tools.') or module.count('.') != 2:
                continue  # `from gaussiansr_arch.tools.x import name` also lists x.name: keep the module
            if module != 'gaussiansr_arch.tools.common' and module != f'gaussiansr_arch.tools.{path.stem}':
                found.add(f'{path.name}: {module}')
    assert not found, sorted(found)
    toolkit = {
        f'{path.name}: {module}'
        for path in sorted((PACKAGE / 'toolkit').glob('*.py'))
        for module in imported_modules(path)
        if module.startswith('gaussiansr_arch.tools')
    }
    assert not toolkit, sorted(toolkit)
