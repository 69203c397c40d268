"""Install gaussiansr_arch, the GaussianSR plugin for BasicSR."""

import os
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = Path(__file__).parent

# site-packages/gaussiansr_arch_hook.pth: its one line makes the first `import basicsr` register the
# plugin (and apply the torchvision shim), so BasicSR's own `python -m basicsr.train` runs our YAMLs;
# nothing is imported at interpreter start (_gaussiansr_arch_hook.py). site reads .pth files in name
# order: this one comes after an editable install's `__editable__.*.pth`, which makes the hook importable.
HOOK_PTH = 'gaussiansr_arch_hook.pth'
# A no-op where the hook is gone (pip uninstall of a legacy `develop` install leaves the .pth behind).
HOOK_LINE = (
    "import sys; exec('try: import _gaussiansr_arch_hook as h\\nexcept ImportError: pass\\nelse: h.install()')\n"
)


class BuildPyWithHook(build_py):
    """build_py that also writes :data:`HOOK_PTH` at the root of what is installed into site-packages."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            # `pip install -e .` (PEP 660): setuptools packs the `install` command's install_lib (the
            # unpacked editable wheel) into the wheel, not build_lib, so the .pth goes there
            target = self.get_finalized_command('install').install_lib
        else:  # a regular wheel: bdist_wheel installs build_lib into the wheel's root
            target = self.build_lib
        write_hook(target)


class DevelopWithHook(develop):
    """Legacy `setup.py develop` (setuptools < 80; what pip < 25 runs for `pip install -e .` here)."""

    def run(self) -> None:
        super().run()  # setuptools >= 80: runs `pip install -e .`, i.e. BuildPyWithHook above
        if hasattr(self, 'install_for_development') and getattr(self, 'install_dir', None):
            if getattr(self, 'uninstall', False):
                if os.path.exists(os.path.join(self.install_dir, HOOK_PTH)):
                    os.remove(os.path.join(self.install_dir, HOOK_PTH))
            else:  # the egg-link's easy-install.pth (read before this .pth) puts the hook on sys.path
                write_hook(self.install_dir)


def write_hook(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, HOOK_PTH), 'w') as f:
        f.write(HOOK_LINE)


def read_version() -> str:
    for line in (HERE / 'gaussiansr_arch' / '_version.py').read_text().splitlines():
        if line.startswith('__version__'):
            return line.split('=')[1].strip().strip('\'"')
    raise RuntimeError('__version__ not found in gaussiansr_arch/_version.py')


CONSOLE_SCRIPTS = [
    'gaussiansr-train = gaussiansr_arch.train:main',
    'gaussiansr-test = gaussiansr_arch.test:main',
    'gaussiansr-demo = gaussiansr_arch.demo:main',
    'gaussiansr-upscale = gaussiansr_arch.tools.upscale:main',
    'gaussiansr-compare = gaussiansr_arch.tools.compare:main',
    'gaussiansr-plot-curves = gaussiansr_arch.tools.plot_curves:main',
    'gaussiansr-kernel-bank = gaussiansr_arch.tools.kernel_bank:main',
    'gaussiansr-prepare-div2k = gaussiansr_arch.tools.prepare_div2k:main',
    'gaussiansr-prepare-benchmark = gaussiansr_arch.tools.prepare_benchmark:main',
    'gaussiansr-convert-liif = gaussiansr_arch.tools.convert_liif:main',
    'gaussiansr-convert-lte = gaussiansr_arch.tools.convert_lte:main',
    'gaussiansr-convert-aliif = gaussiansr_arch.tools.convert_aliif:main',
    'gaussiansr-convert-itsrn = gaussiansr_arch.tools.convert_itsrn:main',
    'gaussiansr-convert-weights = gaussiansr_arch.tools.convert_weights:main',
    'gaussiansr-convert-gsasr = gaussiansr_arch.tools.convert_gsasr:main',
    'gaussiansr-convert-continuoussr = gaussiansr_arch.tools.convert_continuoussr:main',
    'gaussiansr-export-onnx = gaussiansr_arch.tools.export_onnx:main',
    'gaussiansr-onnx-render = gaussiansr_arch.tools.onnx_render:main',
    'gaussiansr-model-card = gaussiansr_arch.tools.model_card:main',
]

setup(
    name='gaussiansr_arch',
    version=read_version(),
    description='GaussianSR: 2D Gaussian splatting for arbitrary-scale super-resolution, as a BasicSR plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['gaussiansr_arch', 'gaussiansr_arch.*']),
    py_modules=['_gaussiansr_arch_hook'],
    # options the package itself loads (gaussiansr_arch/options/, utils/option_files.packaged_options)
    package_data={'gaussiansr_arch': ['options/*.yml']},
    cmdclass={'build_py': BuildPyWithHook, 'develop': DevelopWithHook},
    python_requires='>=3.10',
    install_requires=[
        'basicsr>=1.4.2',
        'torch>=1.13',
        'torchvision',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'scikit-image',
        'tqdm',
        'matplotlib',
        'Pillow',  # PIL bicubic LR (lr_degradation: pil), as LIIF's resize_fn; already needed by torchvision
        # .safetensors weights (read, written by training and gaussiansr-convert-weights): the safe,
        # mmap-able format SR tools (chaiNNer, spandrel, diffusers) load, with no pickle at all
        'safetensors',
    ],
    extras_require={
        # einops: only the parity tests build the official GSASR networks with it (they skip without ../shared);
        # selenium: the browser tests of report.html drive the system Chromium through chromedriver
        # pytest-timeout: a hanging test fails alone with its stacks (pytest.ini) instead of stalling CI
        'test': ['pytest', 'pytest-timeout', 'ruff', 'einops', 'selenium'],
        # ONNX export (gaussiansr-export-onnx) and running the exported graph; onnxscript is
        # torch.onnx's exporter back end
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
    },
    entry_points={'console_scripts': CONSOLE_SCRIPTS},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'License :: OSI Approved :: Apache Software License',
    ],
)
