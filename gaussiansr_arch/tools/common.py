"""Helpers shared by the command-line tools: argument parsing, image lists and outputs that a
user can get wrong. Models are loaded by ``gaussiansr_arch.load_model`` (``--opt``: :func:`opt_network`).

Every tool reports user errors as one line (``error: ...``) and exit status 2
(:data:`EXIT_USER_ERROR`, argparse's status for usage errors), never a traceback:
:class:`ToolError` is the one error type of the tools, and :func:`run_tool` (or
:func:`report_error` for tools with their own main loop) turns it, and the one-line errors of
the image and weights readers, into that exit. Outputs are written atomically; an output folder
that is a file or cannot be created, and a write that fails (full disk, permissions), are such
one-line errors too, with nothing partial left behind.
"""

import argparse
import glob
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import yaml

from gaussiansr_arch.archs.coordinates import check_scale, check_size
from gaussiansr_arch.toolkit.conversion import write_converted
from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.toolkit.lmdb_tools import default_workers, verify_or_fail
from gaussiansr_arch.toolkit.outputs import (  # noqa: F401  (the tools import these from here too)
    check_output_dir,
    check_output_free,
    format_scale,
    os_error_reason,
    save_figure_atomic,
    save_image,
    write_text_atomic,
    writing,
)
from gaussiansr_arch.utils.image_io import IMAGE_EXTENSIONS, ImageReadError
from gaussiansr_arch.utils.weights import WeightsError

# Exit status of every tool for a user error (a bad argument, input, weights file or output path).
EXIT_USER_ERROR = 2
# Exit status after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


# What the tools report as one line with EXIT_USER_ERROR (anything else is a bug: traceback).
USER_ERRORS = (ToolError, ImageReadError, WeightsError)


def report_error(err: BaseException | str, prog: str | None = None) -> int:
    """Print ``[prog: ]error: <message on one line>`` on stderr and return :data:`EXIT_USER_ERROR`."""
    message = ' '.join(str(err).split())  # guarantee a single line
    print(f'{prog + ": " if prog else ""}error: {message}', file=sys.stderr)
    return EXIT_USER_ERROR


def run_tool(
    build_parser: Callable[[], Any], body: Callable[[Any], Any], argv: list[str] | None, prog: str | None = None
) -> Any:
    """Parse ``argv`` (None: ``sys.argv[1:]``) with a tool's parser and run ``body(args)``: the one
    exit path of every ``gaussiansr-*`` tool.

    User errors (:data:`USER_ERRORS`) print one line (``[prog: ]error: ...``) and exit with
    :data:`EXIT_USER_ERROR`; Ctrl-C prints one line in the same style and exits with
    :data:`EXIT_INTERRUPTED` (outputs are written atomically: nothing partial is left under a final
    name). Returns what ``body`` returns (tests and the demo use it).
    """
    args = build_parser().parse_args(argv)
    try:
        return body(args)
    except USER_ERRORS as err:
        raise SystemExit(report_error(err, prog)) from None
    except KeyboardInterrupt:
        report_error('interrupted; no partial output was left under a final name', prog)
        raise SystemExit(EXIT_INTERRUPTED) from None


class Tool:
    """A command-line tool: its parser and its body, run through :func:`run_tool` (the one exit path).

    Each tool module ends with ``run, main = Tool(build_parser, _run).entry_points()``:
    ``run(argv)`` returns what the body returns (tests and the demo use it) and ``main(argv)``,
    the console script, returns exit status 0; user errors exit 2 and Ctrl-C 130, one line each.
    """

    def __init__(self, build_parser: Callable[[], Any], body: Callable[[Any], Any], prog: str | None = None):
        self.build_parser, self.body, self.prog = build_parser, body, prog

    def run(self, argv: list[str] | None = None) -> Any:
        """Parse ``argv`` (None: ``sys.argv[1:]``) and run the body; returns what it returns."""
        return run_tool(self.build_parser, self.body, argv, self.prog)

    def main(self, argv: list[str] | None = None) -> int:
        """The console script: run, then exit status 0."""
        self.run(argv)
        return 0

    def entry_points(self) -> tuple[Callable[..., Any], Callable[..., int]]:
        """``(run, main)`` of the tool module."""
        return self.run, self.main


def converter_tool(prog: str, method: str, arch: str, src_example: str, convert_checkpoint: Callable) -> Tool:
    """The tool of an official-checkpoint converter: ``src dst [--force]``, written through
    :func:`gaussiansr_arch.toolkit.conversion.write_converted` (checks, strict load, atomic write).

    Args:
        prog (str): The console script (``gaussiansr-convert-<method>``).
        method (str): The method as its paper names it (the help text's).
        arch (str): Our arch class the file is for.
        src_example (str): An official checkpoint's file name, for the help text.
        convert_checkpoint (Callable): Official checkpoint -> ``{'params', 'network_g'}``.
    """

    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=prog,
            description=f"Convert an official {method} checkpoint to a BasicSR weights file ({{'params': ..., "
            f"'network_g': ...}}) for this package's {arch} arch.",
        )
        parser.add_argument('src', help=f'official checkpoint (e.g. {src_example})')
        parser.add_argument('dst', help='output .pth')
        parser.add_argument('--force', action='store_true', help='overwrite dst if it exists')
        return parser

    def body(args: argparse.Namespace) -> dict:
        converted = write_converted(args.src, args.dst, convert_checkpoint, args.force)
        print(f'wrote {args.dst}: {len(converted["params"])} tensors, {converted["network_g"]}')
        return converted

    return Tool(build_parser, body, prog)


# ---------------------------------------------------------------------------- parsing
def add_weights_args(parser, weights_help: str) -> None:
    """``--weights``, ``--opt`` and ``--param-key``: how every tool names a trained model (read by
    ``gaussiansr_arch.load_model``, ``--opt`` through :func:`opt_network`)."""
    parser.add_argument('--weights', required=True, help=weights_help)
    parser.add_argument(
        '--opt',
        help='BasicSR YAML whose network_g describes the arch (default: what the weights record, '
        'else detected from their parameter shapes)',
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


# ---------------------------------------------------------------------------- files
def output_name(path: str, scale=None, size=None) -> str:
    """The output file of an image in the output folder (``-o`` of every tool that writes images):
    ``<stem>_x<scale>.png`` (scale) or ``<stem>_<H>x<W>.png`` (size)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if size is not None:
        return f'{stem}_{size[0]}x{size[1]}.png'
    return f'{stem}_x{format_scale(scale)}.png'


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


def opt_network(opt_path: str | None) -> tuple[dict | None, str | None]:
    """``--opt``: the ``network_g`` of a BasicSR YAML and where it comes from, for
    ``gaussiansr_arch.load_model(..., network_g=..., source=...)`` (the one loader); (None, None) without it.

    Raises:
        ToolError: a missing or malformed options file, or one without ``network_g``.
    """
    if opt_path is None:
        return None, None
    opt = load_yaml(opt_path)
    if 'network_g' not in opt:
        raise ToolError(f'options file {opt_path}: no network_g key')
    return opt['network_g'], f'options file {opt_path}'


def resolve_device(name: str, precision: str = 'fp32') -> torch.device:
    """Check ``--device``/``--precision`` and return the device; fp16 needs CUDA."""
    from gaussiansr_arch.archs.precision import check_precision

    if name not in ('cpu', 'cuda') and not name.startswith('cuda:'):
        raise ToolError(f'--device {name!r}: expected cpu or cuda')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ToolError(f'--device {name}: CUDA is not available on this machine')
    try:
        check_precision(precision, name)
    except ValueError as err:
        raise ToolError(f'--{err}') from None
    return torch.device(name)


def add_execution_args(parser) -> None:
    """``--device``, ``--precision`` and ``--compile``, the same for every tool that runs a model."""
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', help='cpu or cuda')
    parser.add_argument(
        '--precision',
        default='fp32',
        choices=['fp32', 'bf16', 'fp16'],
        help='fp32, or bf16/fp16 autocast with float32 weights (fp16: CUDA only; bf16: CPU too)',
    )
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the model (eager fallback with a warning where no compiler works)',
    )


def prepare_arch(arch: torch.nn.Module, compile_model: bool) -> torch.nn.Module:
    """Eval mode, compiled when asked (``--compile``)."""
    from gaussiansr_arch.archs.precision import compile_arch

    arch.eval()
    return compile_arch(arch) if compile_model else arch


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def check_renderable(arch, lq: torch.Tensor, size) -> None:
    """ToolError when ``arch`` cannot render ``size`` from ``lq`` (its ``check_output_size``, e.g.
    GSASR's one scale): checked before :func:`~gaussiansr_arch.archs.precision.upscale_tensor`."""
    try:
        arch.check_output_size(lq.shape[-2:], check_size(size))
    except ValueError as err:
        raise ToolError(str(err)) from None


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


# ---------------------------------------------------------------------------- data preparation tools
def add_prepare_args(parser) -> None:
    """Options shared by the preparation tools."""
    parser.add_argument(
        '--workers',
        type=int,
        default=default_workers(),
        help='reading processes (default: all cores, %(default)s here)',
    )
    parser.add_argument('--overwrite', action='store_true', help='rebuild outputs that already exist')
    parser.add_argument(
        '--skip-bad', action='store_true', help='skip unreadable source images (listed on stderr) instead of stopping'
    )
    parser.add_argument(
        '--verify',
        action='store_true',
        help='afterwards re-read every LMDB key and check it against meta_info.txt '
        '(also checks LMDBs that already existed)',
    )
    parser.add_argument(
        '--compress-level',
        type=int,
        default=1,
        choices=range(10),
        metavar='0-9',
        help='PNG compression level of stored images (default 1, as BasicSR)',
    )


def check_prepare_args(args, scales_attr: str) -> None:
    """Validate the options every preparation tool shares (ToolError, one line, on a bad one)."""
    if args.workers < 1:
        raise ToolError('--workers must be >= 1')
    flag = '--' + scales_attr.replace('_', '-')
    try:
        setattr(args, scales_attr, [check_scale(s) for s in getattr(args, scales_attr)])
    except ValueError as err:
        raise ToolError(f'{flag}: {err}') from None


def run_builds(built_paths: Iterable[str], verify: bool) -> None:
    """Drive a preparation tool: consume the generator that builds its outputs (yielding each
    finished LMDB path) and verify them on request (ToolError on a problem; the tools' runner
    turns it, and Ctrl-C, into a one-line exit)."""
    for path in built_paths:
        if verify:
            verify_or_fail(path)
