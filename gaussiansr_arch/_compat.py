"""Compatibility shims that must run before anything imports basicsr.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module removed in
torchvision 0.17. The fix exists on BasicSR's master but was never released, so we alias
the old name to its successor before the first ``import basicsr``.
"""

import importlib
import sys


def install_torchvision_shim() -> None:
    """Alias ``torchvision.transforms.functional_tensor`` if this torchvision lacks it."""
    old_name = 'torchvision.transforms.functional_tensor'
    if old_name in sys.modules:
        return
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms.functional')
