"""GaussianSR (AAAI 2025) as a BasicSR plugin.

Importing this package registers every arch, dataset and model with BasicSR's registries, and
makes BasicSR's ``parse_options`` resolve ``datasets.train.total_batch_size`` (utils/total_batch.py).
The torchvision shim must run first: basicsr 1.4.2 cannot be imported without it.
"""

from gaussiansr_arch._compat import install_torchvision_shim

install_torchvision_shim()

from gaussiansr_arch import archs, data, models  # noqa: E402,F401  (registration side effects)
from gaussiansr_arch._version import __version__  # noqa: E402,F401
from gaussiansr_arch.utils import total_batch  # noqa: E402
from gaussiansr_arch.utils.weights import load_model  # noqa: E402,F401

total_batch.install()  # BasicSR's option parsing also resolves datasets.train.total_batch_size

__all__ = ['__version__', 'load_model']
