"""Register gaussiansr_arch with BasicSR the first time anything imports ``basicsr``.

So BasicSR's own entries run our YAMLs unchanged::

    python -m basicsr.train -opt options/train/train_GaussianSR_EDSR-baseline_DIV2K.yml
    python -m basicsr.test -opt options/test/test_GaussianSR_EDSR-baseline_Set5.yml

``pip install`` puts ``gaussiansr_arch_hook.pth`` into site-packages (setup.py); its one line runs
:func:`install` at interpreter start, which only puts :class:`BasicSRFinder` first in
``sys.meta_path``: nothing else is imported then (no torch, no basicsr). On the first ``import
basicsr`` the finder removes itself, applies gaussiansr_arch's torchvision shim (basicsr 1.4.2
imports ``torchvision.transforms.functional_tensor``, removed from torchvision), lets basicsr import
as usual and then imports ``gaussiansr_arch``, which registers its archs, datasets and models.
``import gaussiansr_arch`` first works as before (it applies the shim itself and imports basicsr,
which triggers the finder: gaussiansr_arch is then already importing, so nothing is imported twice).

A top-level module, not part of the package: importing anything under ``gaussiansr_arch`` imports
the package, hence torch and basicsr. For the same reason the shim is run from
``gaussiansr_arch/_compat.py`` by its file path, found with ``importlib.util.find_spec`` (which locates
the package without importing it). An editable install links this file, so edits apply at once; the
.pth line itself changes only on reinstall.
"""

import importlib.util
import os
import runpy
import sys
import warnings

TARGET = 'basicsr'
PLUGIN = 'gaussiansr_arch'


class _RegisteringLoader:
    """basicsr's own loader, then ``import gaussiansr_arch`` once basicsr has finished importing."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # basicsr keeps its own loader
        self.loader.exec_module(module)
        try:
            importlib.import_module(PLUGIN)
        except Exception as err:  # a broken plugin must not break `import basicsr` for everyone else
            warnings.warn(f'{PLUGIN} could not register with BasicSR: {type(err).__name__}: {err}', stacklevel=2)


class BasicSRFinder:
    """``sys.meta_path`` finder acting once, on the first ``import basicsr``."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        uninstall()
        plugin = importlib.util.find_spec(PLUGIN)  # locates the package without importing it
        if plugin is None or not plugin.origin:  # uninstalled, or the editable source folder is gone
            return None
        compat = os.path.join(os.path.dirname(plugin.origin), '_compat.py')
        runpy.run_path(compat)['install_torchvision_shim']()
        spec = importlib.util.find_spec(TARGET)  # basicsr's own spec (this finder is out of the way)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Put :class:`BasicSRFinder` first in ``sys.meta_path`` (the .pth line; idempotent; no import)."""
    if TARGET not in sys.modules and BasicSRFinder not in sys.meta_path:
        sys.meta_path.insert(0, BasicSRFinder)


def uninstall() -> None:
    if BasicSRFinder in sys.meta_path:
        sys.meta_path.remove(BasicSRFinder)
