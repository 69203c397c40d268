"""Import every module of a package folder whose name ends with a suffix (BasicSR's scan)."""

import importlib
from pathlib import Path


def import_modules_with_suffix(package: str, folder: str, suffix: str) -> list:
    """Import ``<package>.<name>`` for every ``<name><suffix>.py`` in ``folder``.

    Args:
        package (str): Dotted package name, e.g. ``'gaussiansr_arch.archs'``.
        folder (str): Directory of that package.
        suffix (str): File-name suffix without ``.py``, e.g. ``'_arch'``.

    Returns:
        list: The imported modules, sorted by file name for a deterministic order.
    """
    names = sorted(p.stem for p in Path(folder).glob(f'*{suffix}.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
