"""Shared helpers of the benchmark scripts: machine description, models, photos, timing."""

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gaussiansr_arch  # noqa: F401  (torchvision shim + registration: must precede any basicsr import)

# isort: split
import torch.nn.functional as F

from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
from gaussiansr_arch.archs.liif_arch import LIIF, LIIFState, feature_coord_map, sample_nearest, unfold3x3
from gaussiansr_arch.data.protocol import to_float
from gaussiansr_arch.utils.methods import methods
from gaussiansr_arch.utils.weights import model_from_checkpoint

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'
# The official EDSR-baseline-LIIF checkpoint: $GAUSSIANSR_LIIF_CKPT, else ../shared/reference/liif/
# next to the repository.
LIIF_CHECKPOINT = Path(
    os.environ.get('GAUSSIANSR_LIIF_CKPT', HERE.parents[1] / 'shared' / 'reference' / 'liif' / 'edsr-baseline-liif.pth')
)
TRAIN_PHOTOS = ('astronaut', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina')
HELD_OUT_PHOTOS = ('chelsea', 'coffee')
# bench_quality: every natural colour photo that ships with scikit-image (none is downloaded),
# and three held-out photos (grace_hopper is matplotlib's sample; skimage's 'cat' is chelsea).
# ('motorcycle_left' is the left view of skimage's stereo_motorcycle; the right view is nearly the same picture.)
QUALITY_TRAIN_PHOTOS = ('astronaut', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina', 'motorcycle_left')
QUALITY_HELD_OUT_PHOTOS = ('chelsea', 'coffee', 'grace_hopper')


def machine_info(device: str) -> str:
    """One line: CPU model, cores, torch version and threads (and the GPU when cuda)."""
    model = platform.processor() or 'unknown CPU'
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                model = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info = (
        f'machine: {model}; {os.cpu_count()} logical cores; torch {torch.__version__}; '
        f'threads {torch.get_num_threads()}; python {sys.version.split()[0]}; device {device}'
    )
    if device.startswith('cuda') and torch.cuda.is_available():
        info += f' ({torch.cuda.get_device_name(0)})'
    if hasattr(os, 'getloadavg'):
        info += f'; load average {os.getloadavg()[0]:.2f}'
    return info


def check_device(device: str) -> torch.device:
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {device}: CUDA is not available on this machine')
    return torch.device(device)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (with device synchronisation)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(values) -> float:
    return statistics.median(values)


# Benchmark-only archs (register_benchmark_archs), listed right after the method they are a form of.
BENCHMARK_FORMS = {'liif': {'liif-official-form': {'type': 'OfficialFormLIIF'}}}


def networks(variants: bool = True) -> dict[str, dict]:
    """The ``network_g`` of every model the benchmarks compare, by benchmark name.

    Every registered method descriptor (``gaussiansr_arch.utils.methods``) that is ``benchmarked``,
    under its key (``'gsasr'``), at its default configuration (the papers' EDSR-baseline models),
    random init; with ``variants`` its named variants too (``'gaussiansr-mlp'``); and the
    benchmark-only forms (``'liif-official-form'``) after their method.
    """
    out: dict[str, dict] = {}
    for method in methods():
        if not method.benchmarked:
            continue
        out[method.key] = method.network()
        for variant in method.variants if variants else ():
            out[f'{method.key}-{variant}'] = method.network(variant)
        out.update(BENCHMARK_FORMS.get(method.key, {}))
    return out


def build_model(name: str, pretrained: bool = True) -> tuple[torch.nn.Module, str]:
    """A benchmark model by name (:func:`networks`) and a note on its weights.

    LIIF gets the official weights when the checkpoint is available; every other arch is
    random-init (speed and memory do not depend on the values).
    """
    if name.startswith('liif'):
        return liif(pretrained, official_form=name == 'liif-official-form')
    from basicsr.archs import build_network

    return build_network(networks()[name]), 'random-init weights'


def gaussiansr(decoder: str = 'lte', **opt) -> GaussianSR:
    """GaussianSR with the paper's defaults (or the ``mlp`` decoder), random init."""
    return GaussianSR(decoder=decoder, **opt)


def liif(pretrained: bool = True, official_form: bool = False) -> tuple[LIIF, str]:
    """EDSR-baseline LIIF, with the official weights when the checkpoint is available.

    Args:
        official_form (bool): evaluate the first MLP layer per query as the official code does.

    Returns:
        tuple: (model, description of its weights).
    """
    if not (pretrained and LIIF_CHECKPOINT.is_file()):
        model = OfficialFormLIIF() if official_form else LIIF()
        return model, f'RANDOM-INIT weights (official checkpoint not found at {LIIF_CHECKPOINT})'
    from gaussiansr_arch.tools.convert_liif import convert_checkpoint, load_checkpoint

    # converted in memory and loaded by the one loader, as gaussiansr-convert-liif + load_model would
    converted = convert_checkpoint(load_checkpoint(str(LIIF_CHECKPOINT)))
    model = model_from_checkpoint(converted, str(LIIF_CHECKPOINT))
    if official_form:
        official = OfficialFormLIIF(**{k: v for k, v in model.network_g.items() if k != 'type'})
        official.load_state_dict(model.state_dict(), strict=True)
        model = official
    return model, f'official weights ({LIIF_CHECKPOINT})'


class OfficialFormLIIF(LIIF):
    """LIIF evaluated as the official ``query_rgb`` does: the whole first layer per query and shift.

    Same function and weights as :class:`LIIF`, whose ``encode`` applies the first layer's
    latent-code columns once per LR pixel instead (the cheapest exact form). Benchmarks only:
    it shows what a comparison against the official formulation measures.
    """

    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> LIIFState:
        code = unfold3x3(feat) if self.feat_unfold else feat
        return LIIFState(lq=lq, feat=torch.cat([code, feature_coord_map(code)], dim=1))

    def sample_projected_code(self, state: LIIFState, coord: torch.Tensor):
        sampled = sample_nearest(state.feat, coord)
        return F.linear(sampled[..., :-2], self.imnet[0].weight[:, : self.code_dim]), sampled[..., -2:]


def register_benchmark_archs() -> None:
    """Put the benchmark-only archs in BasicSR's ARCH_REGISTRY (for runs through the trainer)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    if 'OfficialFormLIIF' not in ARCH_REGISTRY:
        ARCH_REGISTRY.register(OfficialFormLIIF)


def photo(name: str) -> np.ndarray:
    """A scikit-image photo (or matplotlib's ``grace_hopper``) as HxWx3 float32 RGB in [0, 1]."""
    if name == 'grace_hopper':
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data('grace_hopper.jpg') as f:
            img = matplotlib.image.imread(f, format='jpg')
    elif name == 'motorcycle_left':
        import skimage.data

        img = skimage.data.stereo_motorcycle()[0]
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    return to_float(img) if img.dtype == np.uint8 else img.astype(np.float32)


def lr_photo(size: int, device: torch.device, name: str = 'astronaut') -> torch.Tensor:
    """A ``size`` x ``size`` LR tensor [1,3,size,size] (MATLAB-bicubic downscaled photo)."""
    from gaussiansr_arch.data.protocol import make_lr

    img = photo(name)
    side = min(img.shape[:2])
    return torch.from_numpy(make_lr(img[:side, :side], (size, size)).transpose(2, 0, 1).copy())[None].to(device)


def progress(iterable, **kwargs):
    """tqdm on stderr (figures go to stdout)."""
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)
