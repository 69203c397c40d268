"""Helpers shared by the command-line tools: argument parsing, model loading, image lists,
atomic outputs and tiled encoding.

Every tool reports user errors as one line (``error: ...``) and exit status 2, never a
traceback; :class:`ToolError` carries such a message and :func:`run_tool` turns it into
``SystemExit``.
"""

import copy
import glob
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import check_scale, check_size
from gaussiansr_arch.utils.atomic import atomic_path, write_text_atomic  # noqa: F401  (re-exported for tools)

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class ToolError(Exception):
    """A user-facing error: the message is one line and names the file/key/value at fault."""


def run_tool(build_parser: Callable[[], Any], body: Callable[[Any], Any], argv: list[str] | None) -> Any:
    """Parse ``argv`` with a tool's parser and run ``body(args)``.

    :class:`ToolError` and image read errors print one line and exit with 2; Ctrl-C exits with 130.
    Returns what ``body`` returns (tests and the demo use it).
    """
    from gaussiansr_arch.utils.image_io import ImageReadError

    args = build_parser().parse_args(argv)
    try:
        return body(args)
    except (ToolError, ImageReadError) as err:
        message = ' '.join(str(err).split())  # guarantee a single line
        print(f'error: {message}', file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        raise SystemExit(130) from None


# ---------------------------------------------------------------------------- parsing
def add_weights_args(parser, weights_help: str) -> None:
    """``--weights``, ``--opt`` and ``--param-key``: how every tool names a trained model (see :func:`load_model`)."""
    parser.add_argument('--weights', required=True, help=weights_help)
    parser.add_argument(
        '--opt', help='BasicSR YAML whose network_g describes the arch (needed when the weights do not record it)'
    )
    parser.add_argument(
        '--param-key', help='key of the parameters in the weights file (default: params_ema if present, else params)'
    )


def parse_scale(text: str) -> float | tuple[float, float]:
    """Parse ``'3.7'`` -> 3.7 or ``'2.5x3'`` -> (2.5, 3.0); raise ToolError on a bad value."""
    parts = str(text).lower().split('x')
    if len(parts) not in (1, 2):
        raise ToolError(f'--scale {text!r}: expected a number like 3.7 or a pair like 2.5x3')
    values = []
    for part in parts:
        try:
            values.append(check_scale(part.strip()))
        except ValueError:
            raise ToolError(f'--scale {text!r}: {part.strip()!r} is not a finite number > 0') from None
    return values[0] if len(values) == 1 else (values[0], values[1])


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``'1080x1920'`` (H x W) -> (1080, 1920); raise ToolError on a bad value."""
    match = re.fullmatch(r'\s*(\d+)\s*[xX]\s*(\d+)\s*', str(text))
    if not match or min(int(match.group(1)), int(match.group(2))) <= 0:
        raise ToolError(f'--size {text!r}: expected HxW with two positive integers, e.g. 1080x1920')
    return int(match.group(1)), int(match.group(2))


def format_scale(scale) -> str:
    """Name a scale for file names: 4.0 -> '4', 3.7 -> '3.7', (2.5, 3) -> '2.5x3'."""
    if isinstance(scale, (tuple, list)):
        return 'x'.join(format_scale(s) for s in scale)
    return f'{float(scale):g}'


# ---------------------------------------------------------------------------- files
def collect_images(inputs: Sequence[str]) -> list[str]:
    """Expand files, folders (their images, sorted) and glob patterns into a list of image paths.

    Raises:
        ToolError: an input that matches nothing (named).
    """
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, n)
                for n in os.listdir(item)
                if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.')
            )
            if not found:
                raise ToolError(f'input folder {item} contains no images ({", ".join(IMAGE_EXTENSIONS)})')
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise ToolError(f'input pattern {item} matches no file')
        elif os.path.exists(item):
            found = [item]
        else:
            raise ToolError(f'input {item}: no such file or folder')
        paths.extend(p for p in found if p not in paths)
    return paths


def check_output_free(path: str, force: bool) -> None:
    """Raise ToolError if ``path`` exists and ``force`` is not set."""
    if os.path.exists(path) and not force:
        raise ToolError(f'output {path} exists; pass --force to overwrite it')


def save_figure_atomic(fig, path: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches='tight', format='png')
    plt.close(fig)


# ---------------------------------------------------------------------------- models
def load_yaml(path: str) -> dict:
    """Read a YAML mapping; ToolError naming the file when missing or malformed."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ToolError(f'options file {path}: no such file') from None
    except (OSError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ToolError(f'options file {path}: cannot parse YAML ({first})') from None
    if not isinstance(data, dict):
        raise ToolError(f'options file {path}: expected a mapping at the top level')
    return data


def _load_weights_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise ToolError(f'weights file {path}: no such file')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, not a torch file ...
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ToolError(f'weights file {path}: cannot load ({first})') from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def build_arch(network_opt: dict, source: str) -> torch.nn.Module:
    """Build an arch from a BasicSR ``network_g`` mapping via ``ARCH_REGISTRY``."""
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise ToolError(f'{source}: network_g must be a mapping with a "type" key')
    opt = copy.deepcopy(network_opt)
    arch_type = opt.pop('type')
    try:
        cls = ARCH_REGISTRY.get(arch_type)
    except KeyError:
        raise ToolError(f'{source}: network_g type {arch_type!r} is not a registered arch') from None
    try:
        return cls(**opt)
    except (TypeError, ValueError) as err:
        raise ToolError(f'{source}: cannot build {arch_type} from network_g ({err})') from None


def load_model(
    weights: str,
    opt_path: str | None = None,
    param_key: str | None = None,
    device: str | torch.device = 'cpu',
) -> tuple[torch.nn.Module, dict]:
    """Build an arch and load its weights, in eval mode.

    The arch options come from ``network_g`` of ``opt_path`` (a BasicSR YAML) when given,
    else from the ``network_g`` the weights file records (self-describing weights, e.g. the
    converted LIIF). The parameters come from ``param_key`` when given, else ``params_ema``
    if present, else ``params``, else the file itself when it is a bare state dict.

    Returns:
        tuple[Module, dict]: the arch and its ``network_g`` options.

    Raises:
        ToolError: missing files/keys, unknown arch, or weights that do not match the arch
            (the message lists missing and unexpected keys).
    """
    ckpt = _load_weights_file(weights)
    if opt_path is not None:
        opt = load_yaml(opt_path)
        if 'network_g' not in opt:
            raise ToolError(f'options file {opt_path}: no network_g key')
        network_opt, source = opt['network_g'], f'options file {opt_path}'
    elif isinstance(ckpt, dict) and isinstance(ckpt.get('network_g'), dict):
        network_opt, source = ckpt['network_g'], f'weights file {weights}'
    else:
        raise ToolError(f'weights file {weights} records no network_g; pass the run YAML with --opt')

    if param_key is not None:
        if not isinstance(ckpt, dict) or param_key not in ckpt:
            keys = sorted(ckpt) if isinstance(ckpt, dict) else []
            raise ToolError(f'weights file {weights}: no key {param_key!r} (keys: {keys})')
        state = ckpt[param_key]
    elif isinstance(ckpt, dict) and 'params_ema' in ckpt:
        state = ckpt['params_ema']
    elif isinstance(ckpt, dict) and 'params' in ckpt:
        state = ckpt['params']
    elif _is_state_dict(ckpt):
        state = ckpt
    else:
        raise ToolError(f'weights file {weights}: no params_ema/params key and not a state dict')
    if not _is_state_dict(state):
        raise ToolError(f'weights file {weights}: the parameters are not a state dict of tensors')
    # BasicSR strips the DataParallel prefix when loading; do the same.
    state = {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}

    arch = build_arch(network_opt, source)
    own = arch.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ToolError(
            f'weights file {weights} does not match {network_opt["type"]} of {source}: '
            f'missing keys {_short(missing)}, unexpected keys {_short(unexpected)}'
        )
    shapes = [
        f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in own
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes:
        raise ToolError(
            f'weights file {weights} does not match {network_opt["type"]} of {source}: shape mismatch {_short(shapes)}'
        )
    arch.load_state_dict(state, strict=True)
    arch.eval().to(device)
    for p in arch.parameters():
        p.requires_grad_(False)
    return arch, dict(network_opt)


def _short(items: list[str], limit: int = 5) -> str:
    if not items:
        return '[]'
    more = f' ... (+{len(items) - limit} more)' if len(items) > limit else ''
    return '[' + ', '.join(items[:limit]) + more + ']'


def resolve_device(name: str, half: bool = False) -> torch.device:
    """Check ``--device``/``--half`` and return the device; half precision needs CUDA."""
    if name not in ('cpu', 'cuda') and not name.startswith('cuda:'):
        raise ToolError(f'--device {name!r}: expected cpu or cuda')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ToolError(f'--device {name}: CUDA is not available on this machine')
    if half and not name.startswith('cuda'):
        raise ToolError('--half needs --device cuda (half precision is not supported on the CPU)')
    return torch.device(name)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- tensors
def image_to_tensor(img: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """HxWx3 RGB uint8 (or float in [0,1]) -> [1,3,H,W] float tensor in [0,1]."""
    arr = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(device=device, dtype=dtype)


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] (or [3,H,W]) tensor in [0,1] -> HxWx3 RGB uint8, rounded like BasicSR's tensor2img."""
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    return (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


# ---------------------------------------------------------------------------- tiled encoding
def receptive_radius(module: torch.nn.Module) -> int | None:
    """Upper bound on the spatial receptive-field radius (in input pixels) of a conv-only net.

    Sums ``dilation * (kernel - 1) // 2`` over every Conv2d: every path through a residual
    conv net uses a subset of its convs, so the sum bounds the radius. Returns None when the
    net has layers whose reach is not local (attention, pooling, linear layers over space),
    in which case tiling can only be approximate.
    """
    radius = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            if tuple(m.stride) != (1, 1):
                return None
            radius += max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
        elif (
            isinstance(
                m,
                (
                    torch.nn.MultiheadAttention,
                    torch.nn.AdaptiveAvgPool2d,
                    torch.nn.AvgPool2d,
                    torch.nn.MaxPool2d,
                ),
            )
            or 'Attention' in type(m).__name__
        ):
            return None
    return radius


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile)) if length > tile else [0]


def encode_features_tiled(encoder: torch.nn.Module, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``encoder`` on overlapping tiles of ``image`` and stitch the tile interiors.

    Each output tile [y0:y0+tile, x0:x0+tile] is computed from the input window widened by
    ``overlap`` pixels on every side (clipped at the image border, where the encoder's own
    zero padding then applies exactly as for the whole image). With ``overlap`` at least the
    encoder's receptive-field radius the stitched map equals ``encoder(image)`` up to
    floating-point rounding.
    """
    _, _, h, w = image.shape
    feat = None
    for y0 in _tile_starts(h, tile):
        for x0 in _tile_starts(w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            wy0, wx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            wy1, wx1 = min(h, y1 + overlap), min(w, x1 + overlap)
            out = encoder(image[:, :, wy0:wy1, wx0:wx1])
            if feat is None:
                feat = out.new_empty(out.shape[0], out.shape[1], h, w)
            feat[:, :, y0:y1, x0:x1] = out[:, :, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    return feat


def encode_tiled(arch: ArbitraryScaleArch, lq: torch.Tensor, tile: int, overlap: int) -> Any:
    """``arch.encode(lq)`` with the encoder run tile by tile (bounded memory on large inputs).

    Uses the arch's hooks ``encoder_input(lq)`` (the normalised encoder input) and
    ``state_from_features(lq, feat)`` (everything ``encode`` does after the encoder). Whatever follows the encoder
    (e.g. GaussianSR's 3x3 kernel classifier) runs once on the stitched full feature map,
    so only the encoder's own receptive field needs the overlap.

    Raises:
        ToolError: bad tile or overlap.
    """
    if tile <= 0 or overlap < 0:
        raise ToolError(f'--tile must be > 0 and --tile-overlap >= 0, got {tile} and {overlap}')
    feat = encode_features_tiled(arch.encoder, arch.encoder_input(lq), tile, overlap)
    return arch.state_from_features(lq, feat)


@torch.no_grad()
def upscale_tensor(
    arch: ArbitraryScaleArch,
    lq: torch.Tensor,
    size: Sequence[int],
    chunk_size: int,
    tile: int | None = None,
    overlap: int = 0,
) -> torch.Tensor:
    """Upscale [1,3,h,w] to ``size`` with ``arch``, tiling the encoder when ``tile`` is set."""
    size = check_size(size)
    if not tile or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        return arch.upscale(lq, size=size, chunk_size=chunk_size)
    return arch.render(encode_tiled(arch, lq, tile, overlap), size, chunk_size)


def output_size(lr_size: Sequence[int], scale=None, size=None) -> tuple[int, int]:
    """Output (H, W) for ``--size`` or ``--scale`` (same rule as the archs' ``upscale``)."""
    if size is not None:
        return check_size(size)
    scales = scale if isinstance(scale, (tuple, list)) else (scale, scale)
    return tuple(max(1, round(n * s)) for n, s in zip(lr_size, scales))


def fail_if_too_large(h: int, w: int, max_pixels: float, name: str) -> None:
    """ToolError when an output of (h, w) exceeds ``max_pixels``."""
    if max_pixels > 0 and h * w > max_pixels:
        raise ToolError(f'{name}: output {h}x{w} = {h * w} pixels exceeds --max-pixels {max_pixels:g}')


def is_finite_number(value: Any) -> bool:
    """True for a real finite number (bool excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def progress(iterable, desc: str, disable: bool = False):
    """tqdm progress bar on stderr (kept off stdout so results can be piped)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit='img', file=sys.stderr, disable=disable, dynamic_ncols=True)
