"""Option files as dicts: the YAMLs that ship with the package (``gaussiansr_arch/options/``, setup.py
package_data) and any other options file. Code that needs options loads one of these and overrides
what it must, instead of writing the options as a dict."""

from importlib import resources
from pathlib import Path

import yaml


def read_options(path: str | Path) -> dict:
    """The mapping a YAML options file holds (ValueError when it holds anything else)."""
    return _mapping(Path(path).read_text(encoding='utf-8'), f'options file {path}')


def packaged_options(name: str) -> dict:
    """The options in ``gaussiansr_arch/options/<name>``, read from the installed package (a fresh dict)."""
    text = (resources.files('gaussiansr_arch') / 'options' / name).read_text(encoding='utf-8')
    return _mapping(text, f'packaged options {name}')


def _mapping(text: str, where: str) -> dict:
    opt = yaml.safe_load(text)
    if not isinstance(opt, dict):
        raise ValueError(f'{where} must be a mapping of options')
    return opt
