"""Install gaussiansr_arch, the GaussianSR plugin for BasicSR."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


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
        'test': ['pytest', 'ruff', 'einops', 'selenium'],
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
